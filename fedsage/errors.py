"""The whole fedsage exception tree.

::

    FedsageError
    ├── ConfigurationError (ValueError)     bad arguments, missing extras, missing credentials
    │   └── MissingExtraError (ImportError)  an optional extra is not installed
    ├── DataError                           reading or writing data, database errors
    ├── StorageError                        the object store (local folder tree or S3)
    ├── TrainingError (ValueError)          a training job failed (the SDK's exception is one too)
    ├── RuntimeBuildError                   a framework runtime could not be built
    ├── EndpointError                       an endpoint could not be created, found or reached
    │   └── InvocationError                 the model answered with an error status (ModelError)
    ├── ScoringError                        batch scoring failed (rows named; target untouched)
    ├── TransformJobError (ValueError)      a local Batch Transform job failed (the SDK's text)
    └── DeploymentError                     building, pushing or applying a Kyma deployment

Every message says what was wrong and what to do about it.  Errors that wrap a foreign
exception keep it as ``__cause__`` (``raise ... from exc``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "ConfigurationError",
    "DataError",
    "DeploymentError",
    "EndpointError",
    "FedsageError",
    "InvocationError",
    "MissingExtraError",
    "RuntimeBuildError",
    "ScoringError",
    "StorageError",
    "TrainingError",
    "TransformJobError",
]


class FedsageError(Exception):
    """Base class of every error fedsage raises on purpose."""

    def __init__(self, *args: object) -> None:
        # Not cooperative on purpose: in aws mode some errors also derive from the SDK's
        # or botocore's exceptions, whose constructors take other arguments.
        Exception.__init__(self, *args)


class ConfigurationError(FedsageError, ValueError):
    """A parameter, setting or environment variable has a value fedsage cannot use."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional dependency group is needed but not installed."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"this feature needs the optional module {module!r}, which is not installed; "
            f"install it with: pip install 'fedsage[{extra}]'"
        )


def import_extra(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        The module to import (``"boto3"``, ``"hdbcli.dbapi"``, ...).
    extra : str
        The fedsage extra that installs it (``"aws"``, ``"datasphere"``, ``"kyma"``).

    Raises
    ------
    MissingExtraError
        If the import fails; the message gives ``pip install 'fedsage[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module.split(".", 1)[0]) from exc


class DataError(FedsageError):
    """Reading from or writing to a database or a data file failed."""


class StorageError(FedsageError):
    """An object-store operation failed (missing key, bad URI, write error)."""


class _JobStatusError(FedsageError, ValueError):
    """A job that ended ``Failed`` or ``Stopped``, worded as the SDK's
    ``UnexpectedStatusException``: ``Error for <kind> job NAME: STATUS. Reason: ...``."""

    kind = ""

    def __init__(self, job_name: str, status: str, reason: str) -> None:
        self.job_name = job_name
        self.status = status
        self.reason = reason
        FedsageError.__init__(
            self, f"Error for {self.kind} job {job_name}: {status}. Reason: {self._told(reason)}"
        )

    def _told(self, reason: str) -> str:
        """The message's text after ``Reason:``."""
        return reason


class TrainingError(_JobStatusError):
    """A training job failed or was stopped.

    Attributes
    ----------
    job_name : str
        The training job's name.
    status : str
        ``Failed`` or ``Stopped``.
    reason : str
        The job's ``FailureReason``.
    """

    kind = "Training"

    def _told(self, reason: str) -> str:
        return f"{reason}. See the whole log with: fedsage jobs logs {self.job_name}"


class RuntimeBuildError(FedsageError):
    """A framework runtime could not be found or built."""


class EndpointError(FedsageError):
    """An endpoint could not be created, found or reached."""


class InvocationError(EndpointError):
    """The model behind an endpoint answered with an error status.

    Mirrors SageMaker runtime's ``ModelError``: ``status_code`` is the container's
    status (``OriginalStatusCode``) and ``body`` its response body (``OriginalMessage``).
    """

    def __init__(self, endpoint_name: str, status_code: int, body: str) -> None:
        self.endpoint_name = endpoint_name
        self.status_code = status_code
        self.body = body
        kind = "client" if 400 <= status_code < 500 else "server"
        FedsageError.__init__(
            self,
            f"Received {kind} error ({status_code}) from model with message {body!r}. "
            f"See the endpoint's log with: fedsage endpoints logs {endpoint_name}"
        )


class ScoringError(FedsageError):
    """Batch scoring failed: a batch the model could not score, a dead model server, or
    row counts that differ.  The message names the input rows and the model's own
    message; the target was left as it was."""


class TransformJobError(_JobStatusError):
    """A Batch Transform job failed, worded as the SDK's ``UnexpectedStatusException``.

    Attributes
    ----------
    job_name : str
        The transform job's name.
    status : str
        ``Failed``.
    reason : str
        The job's ``FailureReason``.
    """

    kind = "Transform"

    def _told(self, reason: str) -> str:
        return reason or "(No reason provided)"


class DeploymentError(FedsageError):
    """Building, pushing or applying a (Kyma) deployment failed."""
