"""fedsage errors that are also the exceptions a SageMaker notebook already catches.

In aws mode a failed job raises an error that is both fedsage's
:class:`~fedsage.errors.TrainingError` and the SDK's ``UnexpectedStatusException``,
and a model's error answer is both :class:`~fedsage.errors.InvocationError` and
botocore's ``ClientError`` (code ``ModelError``), so ``except`` clauses written for
either keep working.  The classes are made on first use: the SDK is an optional extra.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..errors import InvocationError, TrainingError
from ..storage.s3 import import_aws

__all__ = ["model_error", "training_error"]


@cache
def _training_error_class() -> type[TrainingError]:
    unexpected = import_aws("sagemaker.exceptions").UnexpectedStatusException

    class SageMakerTrainingError(TrainingError, unexpected):  # type: ignore[misc, valid-type]
        """A failed SageMaker job: fedsage's TrainingError and the SDK's exception."""

        def __init__(self, job_name: str, status: str, reason: str) -> None:
            TrainingError.__init__(self, job_name, status, reason)
            self.allowed_statuses = ("Completed", "Stopped")
            self.actual_status = status

    return SageMakerTrainingError


@cache
def _model_error_class() -> type[InvocationError]:
    client_error = import_aws("botocore.exceptions").ClientError

    class SageMakerModelError(InvocationError, client_error):  # type: ignore[misc, valid-type]
        """A model's error answer: fedsage's InvocationError and botocore's ModelError."""

        def __init__(
            self, endpoint_name: str, status_code: int, body: str, response: dict[str, Any]
        ) -> None:
            InvocationError.__init__(self, endpoint_name, status_code, body)
            self.response = response
            self.operation_name = "InvokeEndpoint"

    return SageMakerModelError


def training_error(job_name: str, status: str, reason: str) -> TrainingError:
    """The error for a failed job in aws mode."""
    return _training_error_class()(job_name, status, reason)


def model_error(
    endpoint_name: str, status_code: int, body: str, response: dict[str, Any]
) -> InvocationError:
    """The error for a model's error answer in aws mode."""
    error_class: Any = _model_error_class()
    return error_class(endpoint_name, status_code, body, response)
