"""Per-``framework_version`` environments that jobs and endpoints run in.

:func:`resolve_runtime` turns a SageMaker ``framework_version`` (of the scikit-learn
images, or with ``framework="xgboost"`` of the XGBoost images) into a :class:`Runtime`
(an interpreter plus the image's locked libraries), building it once into the cache;
:func:`requirements_overlay` layers a job's ``requirements.txt`` on top.

The building machinery imports lazily: a job runner that only needs :class:`Runtime`
must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HOST, IMAGE_ENV, XGBOOST_IMAGE_ENV, Runtime, host_runtime, image_env
from .catalog import (
    DEFAULT_FRAMEWORK_VERSION,
    FRAMEWORKS,
    SKLEARN,
    SUPPORTED_VERSIONS,
    XGBOOST,
    XGBOOST_VERSIONS,
    check_framework,
    check_framework_version,
    supported_versions,
)

if TYPE_CHECKING:
    from .overlay import requirements_overlay
    from .resolve import ApproximateRuntimeWarning, cached_runtime, resolve_runtime

__all__ = [
    "DEFAULT_FRAMEWORK_VERSION",
    "FRAMEWORKS",
    "HOST",
    "IMAGE_ENV",
    "SKLEARN",
    "SUPPORTED_VERSIONS",
    "XGBOOST",
    "XGBOOST_IMAGE_ENV",
    "XGBOOST_VERSIONS",
    "ApproximateRuntimeWarning",
    "Runtime",
    "cached_runtime",
    "check_framework",
    "check_framework_version",
    "host_runtime",
    "image_env",
    "requirements_overlay",
    "resolve_runtime",
    "supported_versions",
]

_LAZY = {
    "requirements_overlay": "overlay",
    "ApproximateRuntimeWarning": "resolve",
    "resolve_runtime": "resolve",
    "cached_runtime": "resolve",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedsage.runtimes' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
