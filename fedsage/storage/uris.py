"""``s3://bucket/key`` and ``file://path`` URIs, and S3's naming rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigurationError

__all__ = ["S3Uri", "check_bucket_name", "check_prefix", "file_uri_to_path", "parse_s3_uri"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BAD_BUCKET_AFFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str, param: str = "bucket_name") -> str:
    """Return ``name`` if it follows S3's general-purpose bucket naming rules.

    Raises
    ------
    ConfigurationError
        Naming the parameter and the rule that was broken.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"the {param} parameter must be a str; got {name!r} instead")
    problem = None
    if not 3 <= len(name) <= 63:
        problem = "must be 3 to 63 characters long"
    elif not _BUCKET.match(name):
        problem = (
            "may contain only lowercase letters, digits, '.' and '-', "
            "and must begin and end with a letter or digit"
        )
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain '..', '.-' or '-.'"
    elif _IPV4.match(name):
        problem = "must not look like an IP address"
    elif name.startswith(_BAD_BUCKET_AFFIXES) or name.endswith(_BAD_BUCKET_SUFFIXES):
        problem = "uses a prefix or suffix that S3 reserves"
    if problem:
        raise ConfigurationError(
            f"the {param} parameter {name!r} is not a valid S3 bucket name: it {problem}; "
            "pick a name such as 'my-team-models'"
        )
    return name


def check_prefix(prefix: str, param: str = "prefix") -> str:
    """Return ``prefix`` without surrounding slashes if it is a usable S3 key prefix."""
    if not isinstance(prefix, str):
        raise ConfigurationError(f"the {param} parameter must be a str; got {prefix!r} instead")
    cleaned = prefix.strip("/")
    problem = None
    if len(cleaned.encode("utf-8")) > 512:
        problem = "is longer than 512 bytes"
    elif any(part in ("", ".", "..") for part in cleaned.split("/")) and cleaned:
        problem = "contains an empty, '.' or '..' path segment"
    elif any(ord(ch) < 32 or ch == "\\" for ch in cleaned):
        problem = "contains a control character or a backslash"
    if problem:
        raise ConfigurationError(
            f"the {param} parameter {prefix!r} {problem}; use segments of letters, digits, "
            "'-', '_' and '.' separated by '/', such as 'model-data'"
        )
    return cleaned


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key (no empty, '.' or '..' segments)."""
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ConfigurationError(
            f"object key {key!r} is not valid: keys are '/'-separated segments, none of them "
            "empty, '.' or '..'"
        )
    return key


@dataclass(frozen=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` URI."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str, param: str = "uri") -> S3Uri:
    """Split ``s3://bucket/key`` into bucket and key (the key may be empty)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigurationError(
            f"the {param} parameter {uri!r} is not an S3 URI; write it as s3://bucket/key"
        )
    check_bucket_name(parts.netloc, param)
    return S3Uri(parts.netloc, parts.path.lstrip("/"))


def file_uri_to_path(uri: str, param: str = "uri") -> Path:
    """Turn ``file:///abs/path`` or ``file://relative/path`` into a :class:`Path`.

    fedml-aws notebooks write both ``file://data.csv`` (relative) and
    ``file:///home/me/data.csv`` (absolute), so ``netloc`` is treated as the first
    segment of a relative path.
    """
    if not uri.startswith("file://"):
        raise ConfigurationError(
            f"the {param} parameter {uri!r} is not a file:// URI; write it as file://path"
        )
    rest = unquote(uri[len("file://") :])
    if not rest:
        raise ConfigurationError(f"the {param} parameter {uri!r} names no path")
    return Path(rest).expanduser()
