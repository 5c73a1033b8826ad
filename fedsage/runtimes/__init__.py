"""Per-``framework_version`` environments that jobs and endpoints run in."""

from .base import HOST, IMAGE_ENV, Runtime, host_runtime

__all__ = ["HOST", "IMAGE_ENV", "Runtime", "host_runtime"]
