"""One translation of botocore errors into fedsage's, for storage, backends and kyma.

Every AWS call fedsage makes runs inside :func:`aws_errors`::

    with aws_errors("download", kind="object", name=uri, error=StorageError):
        client.download_file(...)

A failure becomes one fedsage error whose message names the action, the resource and
the fix; the botocore exception stays as ``__cause__``.  The classes:

* no credentials, credentials refused, access denied, an exhausted quota, an unknown
  profile or region: :class:`~fedsage.errors.ConfigurationError` (the user must change
  credentials, IAM policies, quotas or settings);
* a resource that does not exist: ``not_found`` (default: ``error``);
* anything else: ``error``, the class the caller names.

Codes a caller expects (``BucketAlreadyOwnedByYou``, SageMaker's ``ModelError``) or a
missing resource (``missing_ok=True``) are not raised: the call's :class:`AwsCall`
records them, and the caller decides.

Messages carry AWS's error code and message and never a credential (access key ids
are masked as well).  botocore is imported only when a block is entered (the ``aws``
extra).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, FedsageError, import_extra

__all__ = ["CREDENTIAL_SOURCES", "AwsCall", "aws_errors", "error_code", "is_missing", "translate"]

CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE, "
    "~/.aws/credentials, or an instance/notebook role"
)
_CREDENTIAL_FIX = (
    "check the credentials boto3 finds (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, ~/.aws/credentials, or the instance role) and that they have not expired"
)
_MISSING_CODES = frozenset(
    {
        "404",
        "NotFound",
        "NoSuchBucket",
        "NoSuchKey",
        "ResourceNotFoundException",
        "RepositoryNotFoundException",
    }
)
# SageMaker reports a missing job or endpoint as a ValidationException with a sentence.
_MISSING_TEXT = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
    }
)
_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "AllAccessDisabled"}
)
_QUOTA_CODES = frozenset(
    {"ResourceLimitExceeded", "LimitExceededException", "ServiceQuotaExceededException"}
)
_CODE_HINTS = {
    "BucketAlreadyExists": "another AWS account owns a bucket of that name; pass a different "
    "bucket_name",
}
_KIND_ALIASES = {"job": "training job"}
# kind -> (IAM service prefix, what to do when it does not exist)
_KINDS: dict[str, tuple[str, str]] = {
    "bucket": (
        "s3",
        "create it, or pass an existing bucket_name (or none, for the default bucket)",
    ),
    "object": ("s3", "check the key, and that the job that writes it has finished"),
    "training job": ("sagemaker", "list jobs with: fedsage jobs list --mode aws"),
    "endpoint": ("sagemaker", "list endpoints with: fedsage endpoints list --mode aws"),
    "model": ("sagemaker", "list models with: aws sagemaker list-models"),
    "ECR repository": ("ecr", "fedsage creates it on deploy; check the name and the region"),
    "log": ("logs", "the job has written no log yet"),
}
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")


def error_code(exc: BaseException) -> str:
    """The ``Error.Code`` of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says that the resource asked for does not exist."""
    code = error_code(exc)
    if code in _MISSING_CODES:
        return True
    return code in ("ValidationException", "ResourceNotFound") and bool(
        _MISSING_TEXT.search(str(exc))
    )


def _text(exc: BaseException) -> str:
    return _ACCESS_KEY_ID.sub("***", str(exc))


def _kind(kind: str) -> str:
    return _KIND_ALIASES.get(kind, kind)


def _denied_hint(kind: str, name: str, exc: BaseException) -> str:
    service = _KINDS.get(kind, ("", ""))[0]
    if service == "s3":
        bucket = name.removeprefix("s3://").split("/", 1)[0]
        return (
            f"the identity boto3 uses needs s3 permissions on arn:aws:s3:::{bucket} and "
            f"arn:aws:s3:::{bucket}/*, and the bucket must belong to this account"
        )
    operation = getattr(exc, "operation_name", "") or "this"
    permission = f"{service}:{operation}" if service else f"the {operation}"
    return f"the identity boto3 uses needs the {permission} permission"


def translate(
    exc: BaseException,
    action: str,
    *,
    kind: str = "",
    name: str = "",
    error: type[FedsageError] = FedsageError,
    not_found: type[FedsageError] | None = None,
) -> FedsageError:
    """The fedsage error for a botocore exception raised while doing ``action``.

    Parameters
    ----------
    exc : BaseException
        A ``botocore.exceptions.ClientError`` or ``BotoCoreError``.
    action : str
        What fedsage was doing, as a verb phrase (``"describe training job"``).
    kind, name : str, default=""
        The resource (``"bucket"``, ``"object"``, ``"training job"``, ``"endpoint"``,
        ``"ECR repository"``) and its name; both appear in the message.
    error : type, default=FedsageError
        The class for failures that are not configuration problems.
    not_found : type, optional
        The class for a resource that does not exist (default: ``error``).

    Returns
    -------
    FedsageError
        The caller raises it ``from exc``.
    """
    botocore = import_extra("botocore.exceptions", "aws")
    kind = _kind(kind)
    subject = f"cannot {action}" + (f" {name!r}" if name else "")
    if isinstance(exc, botocore.NoCredentialsError | botocore.PartialCredentialsError):
        return ConfigurationError(f"{subject}: no AWS credentials; set {CREDENTIAL_SOURCES}")
    if isinstance(exc, botocore.ProfileNotFound):
        profile = exc.kwargs.get("profile", "")
        return ConfigurationError(
            f"the AWS profile {profile!r} does not exist; create it with "
            f"`aws configure --profile {profile}`"
        )
    if isinstance(exc, botocore.NoRegionError):
        return ConfigurationError(
            f"{subject}: no AWS region; set AWS_DEFAULT_REGION (or AWS_REGION), or 'region' "
            "in ~/.aws/config for the profile in use"
        )
    code = error_code(exc)
    if code == "NoSuchBucket" and kind == "object":  # the bucket is what is missing
        kind, name = "bucket", name.removeprefix("s3://").split("/", 1)[0]
    if is_missing(exc) and kind and name:
        hint = _KINDS.get(kind, ("", "check the name and the region"))[1]
        return (not_found or error)(
            f"no {kind} named {name!r} in this account and region (it does not exist); {hint}"
        )
    if code in _CREDENTIAL_CODES:
        return ConfigurationError(
            f"{subject}: the credentials were refused ({code}); {_CREDENTIAL_FIX}"
        )
    if code in _DENIED_CODES:
        return ConfigurationError(
            f"{subject}: access denied; {_denied_hint(kind, name, exc)} ({_text(exc)})"
        )
    if code in _QUOTA_CODES:
        return ConfigurationError(
            f"{subject}: an account quota is exhausted; request a quota increase in the "
            f"Service Quotas console or use another instance type ({_text(exc)})"
        )
    if code in _CODE_HINTS:
        return error(f"{subject}: {_CODE_HINTS[code]}")
    if isinstance(exc, botocore.EndpointConnectionError | botocore.ConnectionError):
        return error(f"{subject}: cannot reach AWS ({type(exc).__name__}: {_text(exc)})")
    if code:
        return error(f"{subject}: {_text(exc)}")
    return error(f"{subject}: {type(exc).__name__}: {_text(exc)}")


@dataclass
class AwsCall:
    """What :func:`aws_errors` let through: an expected error code or a missing resource.

    Attributes
    ----------
    code : str
        The expected error code that occurred ('' when none did).
    missing : bool
        True when the resource did not exist and ``missing_ok`` was set.
    exception : BaseException or None
        The botocore exception behind ``code`` or ``missing`` (its ``response``).
    """

    code: str = ""
    missing: bool = False
    exception: Any = None


@contextlib.contextmanager
def aws_errors(
    action: str,
    *,
    kind: str = "",
    name: str = "",
    error: type[FedsageError] = FedsageError,
    not_found: type[FedsageError] | None = None,
    expected: Collection[str] = (),
    missing_ok: bool = False,
) -> Iterator[AwsCall]:
    """Run AWS calls; raise botocore failures as fedsage errors (see :func:`translate`).

    Parameters
    ----------
    action, kind, name, error, not_found
        As for :func:`translate`.
    expected : collection of str, default=()
        Error codes the caller handles: they are recorded in the yielded
        :class:`AwsCall` instead of raised.
    missing_ok : bool, default=False
        Record a missing resource (``AwsCall.missing``) instead of raising.

    Yields
    ------
    AwsCall
        Empty when the block succeeded.

    Raises
    ------
    FedsageError
        ``error``, ``not_found`` or :class:`~fedsage.errors.ConfigurationError`, with
        the botocore exception as ``__cause__``.
    """
    botocore = import_extra("botocore.exceptions", "aws")
    # boto3's transfer manager (upload_file, and the SDK's code upload) wraps a refused
    # write or a missing bucket in its own exception.
    upload_failed = import_extra("boto3.exceptions", "aws").S3UploadFailedError
    call = AwsCall()
    try:
        yield call
    except (botocore.ClientError, botocore.BotoCoreError, upload_failed) as exc:
        code = error_code(exc)
        if code and code in expected:
            call.code, call.exception = code, exc
            return
        if missing_ok and is_missing(exc):
            call.missing, call.exception = True, exc
            return
        raise translate(
            exc, action, kind=kind, name=name, error=error, not_found=not_found
        ) from exc
