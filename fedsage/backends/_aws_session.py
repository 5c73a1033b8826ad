"""AWS plumbing for the aws backend: session, region, credentials, role, SDK, errors.

Everything comes from the standard boto3 chain (environment, profile, config files,
instance metadata); ``AWS_ENDPOINT_URL`` is honoured by every client boto3 builds.
Nothing here logs or formats a credential.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import ConfigurationError, EndpointError, FedsageError
from ..storage.s3 import import_aws

__all__ = [
    "ROLE_ENV",
    "api_error",
    "error_code",
    "load_sagemaker",
    "make_boto_session",
    "resolve_role",
    "sdk_session",
]

logger = logging.getLogger(__name__)

ROLE_ENV = "FEDSAGE_SAGEMAKER_ROLE"
_SUPPRESS_V2_WARNING = "SAGEMAKER_SUPPRESS_V2_WARNING"
_CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE, "
    "~/.aws/credentials, or an instance/notebook role"
)


def error_code(exc: BaseException) -> str:
    """The ``Error.Code`` of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


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
    exceptions = import_aws("botocore.exceptions")
    try:
        role: str = sagemaker.get_execution_role(make_sdk_session())
    except (ValueError, exceptions.ClientError, exceptions.BotoCoreError) as exc:
        raise ConfigurationError(
            "aws mode needs an IAM role for SageMaker and found none: pass role= to "
            f"DwcSagemaker, set {ROLE_ENV}=arn:aws:iam::<account>:role/<name>, or run on a "
            "SageMaker notebook instance or Studio space, whose execution role is used "
            f"({exc})"
        ) from exc
    logger.info("using the execution role %s", role)
    return role


def api_error(exc: BaseException, action: str, *, kind: str = "", name: str = "") -> FedsageError:
    """Map a botocore error from a SageMaker call to the fedsage error for ``kind``.

    ``kind`` is ``job``, ``endpoint`` or ''; a resource that does not exist becomes a
    ``ConfigurationError`` (jobs) or ``EndpointError`` (endpoints), as in local mode.
    """
    exceptions = import_aws("botocore.exceptions")
    if isinstance(exc, exceptions.NoCredentialsError):
        return ConfigurationError(f"cannot {action}: no AWS credentials; set {_CREDENTIAL_SOURCES}")
    code = error_code(exc)
    message = str(exc)
    missing = code in ("ValidationException", "ResourceNotFound") and (
        "not found" in message.lower()
        or "could not find" in message.lower()
        or "does not exist" in message.lower()
    )
    if missing and kind == "job":
        return ConfigurationError(
            f"no training job named {name!r} in this account and region; list jobs with: "
            "fedsage jobs list --mode aws"
        )
    if missing and kind == "endpoint":
        return EndpointError(
            f"no endpoint named {name!r} in this account and region; list endpoints with: "
            "fedsage endpoints list --mode aws"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return ConfigurationError(
            f"cannot {action}: access denied; the identity boto3 uses needs the matching "
            f"sagemaker:* permission ({message})"
        )
    if code == "ResourceLimitExceeded":
        return ConfigurationError(
            f"cannot {action}: an account quota is exhausted; request a quota increase in "
            f"the Service Quotas console or use another instance type ({message})"
        )
    if kind == "endpoint":
        return EndpointError(f"cannot {action}: {message}")
    # No fedsage class fits a failed SageMaker API call better than the base class.
    return FedsageError(f"cannot {action}: {message}")
