"""The S3 object store: one bucket of Amazon S3 behind :class:`ObjectStore`.

boto3 and botocore are optional (the ``aws`` extra) and are imported lazily through
:func:`import_aws`.  Every botocore error is mapped by :func:`fedsage._aws_errors.aws_errors`
to a :class:`~fedsage.errors.StorageError` (or, for credentials and permissions, a
:class:`~fedsage.errors.ConfigurationError`) naming the bucket, the key and the fix.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from .._aws_errors import aws_errors
from ..errors import ConfigurationError, StorageError, import_extra
from .base import ObjectStore
from .uris import check_bucket_name, check_key

__all__ = ["S3Store", "default_bucket_name", "import_aws"]

logger = logging.getLogger(__name__)

_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


def import_aws(module: str) -> ModuleType:
    """Import an optional AWS module (``boto3``, ``botocore...``, ``sagemaker...``).

    Raises
    ------
    MissingExtraError
        When the ``aws`` extra is not installed; the message gives the install command.
    """
    return import_extra(module, "aws")


def _where(bucket: str, key: str = "") -> tuple[str, str]:
    """``(kind, name)`` of an S3 resource, for :func:`fedsage._aws_errors.aws_errors`."""
    return ("object", f"s3://{bucket}/{key}") if key else ("bucket", bucket)


def default_bucket_name(region: str, account: str) -> str:
    """``sagemaker-<region>-<account>``, the SageMaker SDK's default bucket name."""
    return f"sagemaker-{region}-{account}"


class S3Store(ObjectStore):
    """One S3 bucket.

    Parameters
    ----------
    bucket : str
        The bucket name (S3's naming rules are checked).
    client : botocore client
        An ``s3`` client (from the caller's boto3 session, so region, credentials and
        ``AWS_ENDPOINT_URL`` follow the standard boto3 chain).
    region : str
        Where :meth:`ensure_bucket` creates the bucket when it is missing.
    expected_owner : str or None, default=None
        An account id: the bucket must belong to it (used for the default bucket, whose
        name anyone could claim first).

    Notes
    -----
    S3 writes are atomic per object: a reader sees the previous object or the whole new
    one (a multipart upload becomes visible only when it completes).  The bucket is
    checked, and created if missing, on the first write, not at construction.
    """

    def __init__(
        self, bucket: str, *, client: Any, region: str, expected_owner: str | None = None
    ) -> None:
        self.bucket = check_bucket_name(bucket)
        self.client = client
        self.region = region
        self.expected_owner = expected_owner
        self._ensured = False

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, region={self.region!r})"

    def _owner_args(self) -> dict[str, str]:
        return {"ExpectedBucketOwner": self.expected_owner} if self.expected_owner else {}

    def ensure_bucket(self) -> None:
        """Create the bucket in :attr:`region` unless it exists; do it once per store.

        Raises
        ------
        StorageError
            When the bucket belongs to another account or cannot be created.
        """
        if self._ensured:
            return
        with aws_errors(
            "use bucket", kind="bucket", name=self.bucket, error=StorageError, missing_ok=True
        ) as call:
            self.client.head_bucket(Bucket=self.bucket, **self._owner_args())
        if call.missing:
            self._create_bucket()
        self._ensured = True

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with aws_errors(  # created meanwhile by us: fine
            "create bucket",
            kind="bucket",
            name=self.bucket,
            error=StorageError,
            expected=("BucketAlreadyOwnedByYou",),
        ):
            self.client.create_bucket(**args)
        logger.info("created S3 bucket %s in %s", self.bucket, self.region)

    def _call(self, action: str, key: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        kind, name = _where(self.bucket, key)
        with aws_errors(action, kind=kind, name=name, error=StorageError):
            return fn(*args, **kwargs)

    def put_file(self, key: str, path: Path) -> str:
        check_key(key)
        self.ensure_bucket()
        # upload_file switches to a multipart upload above 8 MiB.
        self._call(
            "upload to",
            key,
            self.client.upload_file,
            str(path),
            self.bucket,
            key,
            ExtraArgs=self._owner_args() or None,
        )
        return self.uri(key)

    def put_stream(self, key: str, stream: BinaryIO) -> str:
        check_key(key)
        self.ensure_bucket()
        self._call(
            "upload to",
            key,
            self.client.upload_fileobj,
            stream,
            self.bucket,
            key,
            ExtraArgs=self._owner_args() or None,
        )
        return self.uri(key)

    def download(self, key: str, dest: Path) -> Path:
        check_key(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            self._call(
                "download",
                key,
                self.client.download_file,
                self.bucket,
                key,
                tmp_name,
                ExtraArgs=self._owner_args() or None,
            )
            os.replace(tmp_name, dest)  # the file appears whole or not at all
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return dest

    def exists(self, key: str) -> bool:
        kind, name = _where(self.bucket, check_key(key))
        with aws_errors("read", kind=kind, name=name, error=StorageError, missing_ok=True) as call:
            self.client.head_object(Bucket=self.bucket, Key=key, **self._owner_args())
        return not call.missing

    def list(self, prefix: str) -> list[str]:
        def pages() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            return [
                item["Key"]
                for page in paginator.paginate(
                    Bucket=self.bucket, Prefix=prefix, **self._owner_args()
                )
                for item in page.get("Contents", [])
            ]

        return sorted(self._call("list", prefix, pages))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (an empty prefix is refused)."""
        if not prefix:
            raise ConfigurationError("refusing to delete every object of the bucket: pass a prefix")
        keys = self.list(prefix)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            answer = self._call(
                "delete from",
                prefix,
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
                **self._owner_args(),
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete {len(errors)} object(s) under s3://{self.bucket}/{prefix}, "
                    f"e.g. {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}; "
                    "check the identity may s3:DeleteObject there"
                )
        return len(keys)
