"""Turning training inputs into channel files in an object store.

Accepted inputs: a pandas DataFrame (written as CSV without header and without index,
as fedml-aws did), a streaming source from :mod:`fedsage.data` (anything with an
``export_channel(path, file_format)`` method), a ``file://`` path to a file or folder,
or an ``s3://`` URI already in the store.  Checking (:func:`plan_channel`) is separate
from writing (:func:`upload_channel`), so every input is validated before anything is
written.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigurationError
from .storage import ObjectStore, file_uri_to_path, parse_s3_uri

__all__ = [
    "CONTENT_TYPES",
    "FILE_SUFFIXES",
    "ChannelPlan",
    "ChannelSource",
    "check_channel_name",
    "check_content_type",
    "plan_channel",
    "upload_channel",
]

CONTENT_TYPES = (
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-parquet",
    "application/x-npy",
    "application/x-recordio-protobuf",
    "text/plain",
)
FILE_SUFFIXES = (".csv", ".json", ".json.gz", ".txt")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9\.\-_]{1,64}$")


@runtime_checkable
class ChannelSource(Protocol):
    """A data source that can write itself as one channel file (see :mod:`fedsage.data`)."""

    def export_channel(self, path: Path, file_format: str = "csv") -> int:
        """Write the rows to ``path``; return how many were written."""
        ...


@dataclass(frozen=True)
class ChannelPlan:
    """A checked channel input, not yet written anywhere."""

    name: str
    kind: str  # "dataframe" | "source" | "file" | "folder" | "s3"
    data: Any
    content_type: str | None


def check_content_type(content_type: str | None) -> str | None:
    """Return ``content_type`` if SageMaker's scikit-learn jobs can take it."""
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise ConfigurationError(
            f"the content_type parameter must be a str or None; got {content_type!r} instead"
        )
    base = content_type.split(";", 1)[0].strip().lower()
    if base not in CONTENT_TYPES:
        raise ConfigurationError(
            f"the content_type parameter {content_type!r} is not a supported MIME type; "
            f"use one of {', '.join(CONTENT_TYPES)} (or None)"
        )
    return content_type


def check_channel_name(name: str) -> str:
    """Return ``name`` if it is a valid SageMaker channel name."""
    if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
        raise ConfigurationError(
            f"channel name {name!r} is not valid: use 1 to 64 letters, digits, '.', '-' or '_'"
        )
    return name


def _has_accepted_suffix(path: Path) -> bool:
    return path.name.lower().endswith(FILE_SUFFIXES)


def plan_channel(
    name: str, data: Any, content_type: str | None, *, param: str, store: ObjectStore | None
) -> ChannelPlan:
    """Check one input and describe how it will be written; write nothing.

    Parameters
    ----------
    name : str
        The channel (``train``, ``test`` ...).
    data : DataFrame, ChannelSource or str
        The input.
    content_type : str or None
        Recorded in ``inputdataconfig.json``.
    param : str
        The caller's parameter name, used in error messages.
    store : ObjectStore or None
        The store ``s3://`` URIs must live in (local mode); ``None`` skips that check.

    Raises
    ------
    ConfigurationError
        Naming ``param`` and what to pass instead.
    """
    import pandas as pd

    check_channel_name(name)
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise ConfigurationError(
                f"the {param} parameter is an empty DataFrame ({data.shape[0]} rows, "
                f"{data.shape[1]} columns); pass a DataFrame with at least one row and column"
            )
        return ChannelPlan(name, "dataframe", data, content_type)
    if isinstance(data, ChannelSource):
        return ChannelPlan(name, "source", data, content_type)
    if isinstance(data, str) and data.startswith("file://"):
        path = file_uri_to_path(data, param).resolve()
        if path.is_file():
            if not _has_accepted_suffix(path):
                raise ConfigurationError(
                    f"the {param} parameter {data!r} is a {''.join(path.suffixes) or 'suffix-less'}"
                    f" file; accepted files end with {', '.join(FILE_SUFFIXES)}"
                )
            return ChannelPlan(name, "file", path, content_type)
        if path.is_dir():
            if not any(p.is_file() for p in path.rglob("*")):
                raise ConfigurationError(f"the {param} parameter {data!r} is an empty folder")
            return ChannelPlan(name, "folder", path, content_type)
        raise ConfigurationError(f"the {param} parameter {data!r}: no such file or folder")
    if isinstance(data, str) and data.startswith("s3://"):
        uri = parse_s3_uri(data, param)
        if store is not None:
            if uri.bucket != store.bucket:
                raise ConfigurationError(
                    f"the {param} parameter {data!r} is in bucket {uri.bucket!r}, but local "
                    f"mode's store holds bucket {store.bucket!r}; pass an s3:// URI of that "
                    "bucket, a file:// path or a DataFrame"
                )
            if not store.list(uri.key):
                raise ConfigurationError(
                    f"the {param} parameter {data!r}: no object in the store has that prefix"
                )
        return ChannelPlan(name, "s3", str(uri), content_type)
    raise ConfigurationError(
        f"the {param} parameter must be a pandas DataFrame, a table or query from a "
        f"DbConnection, a file:// path or an s3:// URI; got {type(data).__name__} instead"
    )


def upload_channel(plan: ChannelPlan, store: ObjectStore, key_prefix: str) -> str:
    """Write a planned channel under ``key_prefix/<channel>/``; return its ``s3://`` prefix."""
    if plan.kind == "s3":
        return str(plan.data)
    prefix = f"{key_prefix}/{plan.name}/"
    if plan.kind == "file":
        store.put_file(prefix + plan.data.name, plan.data)
    elif plan.kind == "folder":
        for path in sorted(p for p in plan.data.rglob("*") if p.is_file()):
            store.put_file(prefix + path.relative_to(plan.data).as_posix(), path)
    else:
        file_format = "parquet" if plan.content_type == "application/x-parquet" else "csv"
        file_name = f"{plan.name}.{file_format}"
        with tempfile.TemporaryDirectory(prefix="fedsage-channel-") as tmp:
            local = Path(tmp) / file_name
            if plan.kind == "dataframe":
                if file_format == "parquet":
                    plan.data.to_parquet(local, index=False)
                else:
                    plan.data.to_csv(local, header=False, index=False)
            else:
                plan.data.export_channel(local, file_format)
            store.put_temp_file(prefix + file_name, local)
    return store.uri(prefix)
