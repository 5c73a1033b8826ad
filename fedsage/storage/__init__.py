"""Object stores: S3 and a local folder tree behind one small interface."""

from .base import ObjectStore
from .local import LocalStore
from .uris import S3Uri, check_bucket_name, check_prefix, file_uri_to_path, parse_s3_uri

__all__ = [
    "LocalStore",
    "ObjectStore",
    "S3Uri",
    "check_bucket_name",
    "check_prefix",
    "file_uri_to_path",
    "parse_s3_uri",
]
