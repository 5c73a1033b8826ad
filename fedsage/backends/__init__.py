"""Backends: ``local`` and ``aws``, each composing storage, training and serving.

:func:`get` is the one place a mode becomes a backend; the facade, the command line and
the demo all go through it and then only call the :class:`Backend` interface.
"""

from __future__ import annotations

from .._validation import MODE_ENV, resolve_mode
from .base import Backend, Capabilities, KymaInputs, TrainingRequest

__all__ = [
    "MODE_ENV",
    "Backend",
    "Capabilities",
    "KymaInputs",
    "TrainingRequest",
    "get",
    "resolve_mode",
]


def get(
    mode: str | None = None,
    *,
    bucket_name: str | None = None,
    prefix: str = "",
    role: str | None = None,
    caller: str = "DwcSagemaker",
) -> Backend:
    """The backend of ``mode`` (see :func:`resolve_mode`).

    Parameters
    ----------
    mode : {'local', 'aws'} or None
        Where things run; ``None`` reads ``FEDSAGE_MODE``, else ``local``.
    bucket_name : str, optional
        The bucket; each backend has one default bucket.
    prefix : str, default=''
        Key prefix for job data and artifacts.
    role : str, optional
        The IAM role (aws mode; ignored where :attr:`Capabilities.uses_role` is false).
    caller : str, default='DwcSagemaker'
        Named in the error for a bad ``mode``.

    Raises
    ------
    ConfigurationError
        For an unknown mode, or (aws) missing extras, region or credentials.
    """
    if resolve_mode(mode, caller) == "local":
        from .local import LocalBackend

        return LocalBackend(bucket_name, prefix)
    from .aws import AwsBackend

    return AwsBackend(bucket_name, prefix, role=role)
