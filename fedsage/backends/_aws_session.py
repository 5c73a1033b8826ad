"""AWS plumbing for the aws backend: session, region, credentials, role, SDK, errors.

Everything comes from the standard boto3 chain (environment, profile, config files,
instance metadata); ``AWS_ENDPOINT_URL`` is honoured by every client boto3 builds.
Nothing here logs or formats a credential.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from typing import Any

from .._aws_errors import CREDENTIAL_SOURCES as _CREDENTIAL_SOURCES
from .._aws_errors import AwsCall, aws_errors
from ..errors import ConfigurationError, EndpointError, FedsageError
from ..storage.s3 import import_aws

__all__ = [
    "ROLE_ENV",
    "load_sagemaker",
    "make_boto_session",
    "resolve_role",
    "sagemaker_errors",
    "sdk_session",
]

logger = logging.getLogger(__name__)

ROLE_ENV = "FEDSAGE_SAGEMAKER_ROLE"
_SUPPRESS_V2_WARNING = "SAGEMAKER_SUPPRESS_V2_WARNING"


def make_boto_session() -> Any:
    """A ``boto3.Session`` with a region and credentials, or a clear error.

    Raises
    ------
    ConfigurationError
        When no region or no credentials are configured (the message lists where boto3
        looks; it never shows a credential).
    """
    boto3 = import_aws("boto3")
    session = boto3.Session()
    if not session.region_name:
        raise ConfigurationError(
            "aws mode needs an AWS region: set AWS_DEFAULT_REGION (or AWS_REGION), or "
            "'region' in ~/.aws/config for the profile in use"
        )
    if session.get_credentials() is None:
        raise ConfigurationError(
            f"aws mode needs AWS credentials; none found in {_CREDENTIAL_SOURCES}"
        )
    return session


def load_sagemaker() -> Any:
    """Import the SageMaker Python SDK v2 quietly; return the ``sagemaker`` module.

    fedsage pins SDK v2 on purpose (v3 removed the ``SKLearn`` estimator), so the SDK's
    v2-deprecation notice is suppressed unless ``SAGEMAKER_SUPPRESS_V2_WARNING`` is set
    (set it to an empty value to see the notice).  The SDK's ``sagemaker.config`` logger
    is set to WARNING unless the application configured it, so importing the SDK does
    not print which config files it did not find.
    """
    os.environ.setdefault(_SUPPRESS_V2_WARNING, "1")
    config_logger = logging.getLogger("sagemaker.config")
    if config_logger.level == logging.NOTSET:
        config_logger.setLevel(logging.WARNING)
    sagemaker = import_aws("sagemaker")
    version = getattr(sagemaker, "__version__", "0")
    if not version.startswith("2."):
        raise ConfigurationError(
            f"aws mode needs the SageMaker Python SDK v2 (found {version}; v3 has no SKLearn "
            "estimator); install it with: pip install 'sagemaker>=2.200,<3'"
        )
    return sagemaker


def sdk_session(boto_session: Any, bucket: str) -> Any:
    """A ``sagemaker.Session`` on ``boto_session`` whose default bucket is ``bucket``.

    The SDK reads the user's SDK defaults files itself.  Its usage telemetry stays as
    the SDK ships it (on); opt out with ``SageMaker.PythonSDK.Modules.TelemetryOptOut:
    true`` in those files.  fedsage does not inject that setting: any non-empty SDK
    config makes the SDK re-validate it against its JSON schema on every lookup, which
    costs seconds per training job.
    """
    sagemaker = load_sagemaker()
    return sagemaker.Session(boto_session=boto_session, default_bucket=bucket)


def resolve_role(explicit: str | None, make_sdk_session: Any) -> str:
    """The IAM role SageMaker jobs and models run as.

    Sources, in order: ``explicit`` (the ``role`` argument), the ``FEDSAGE_SAGEMAKER_ROLE``
    variable, then the execution role of the SageMaker notebook instance or Studio
    space this runs in (``sagemaker.get_execution_role``).

    Raises
    ------
    ConfigurationError
        Naming all three sources when none gives a role.
    """
    for source, value in (("the role argument", explicit), (ROLE_ENV, os.environ.get(ROLE_ENV))):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or (value.startswith("arn:") and ":role/" not in value):
            raise ConfigurationError(
                f"{source} is {value!r}, which is not an IAM role; use a role ARN such as "
                "arn:aws:iam::123456789012:role/SageMakerExecution (or a role name)"
            )
        return value
    sagemaker = load_sagemaker()
    try:
        with aws_errors("find the execution role", error=ConfigurationError):
            role: str = sagemaker.get_execution_role(make_sdk_session())
    except (ValueError, ConfigurationError) as exc:
        raise ConfigurationError(
            "aws mode needs an IAM role for SageMaker and found none: pass role= to "
            f"DwcSagemaker, set {ROLE_ENV}=arn:aws:iam::<account>:role/<name>, or run on a "
            "SageMaker notebook instance or Studio space, whose execution role is used "
            f"({exc})"
        ) from exc
    logger.info("using the execution role %s", role)
    return role


def sagemaker_errors(
    action: str, *, kind: str = "", name: str = "", **options: Any
) -> AbstractContextManager[AwsCall]:
    """:func:`fedsage._aws_errors.aws_errors` with the classes of a SageMaker call.

    ``kind`` is ``job``, ``endpoint`` or ''; a job that does not exist is a
    ``ConfigurationError`` and any endpoint failure an ``EndpointError``, as in local
    mode; other failures are ``FedsageError`` (no narrower class fits a failed SageMaker
    API call).  ``options`` go to ``aws_errors`` (``expected``, ``missing_ok``).
    """
    return aws_errors(
        action,
        kind=kind,
        name=name,
        error=EndpointError if kind == "endpoint" else FedsageError,
        not_found=ConfigurationError if kind == "job" else None,
        **options,
    )
