"""Turning training inputs into channel files in an object store.

Accepted inputs, as fedml-aws and SageMaker take them: a pandas DataFrame (written as
CSV without header and without index, as fedml-aws did), a streaming source from
:mod:`fedsage.data` (anything with an ``export_channel(path, file_format)`` method), a
file or folder of any kind given as a plain path (``"train.csv"``, relative to the
working folder, or absolute), a ``pathlib.Path`` or a ``file://`` URI, an ``s3://`` URI
already in the store, or an ``io.BytesIO`` (fedml-aws's RecordIO-protobuf channels),
uploaded as ``<channel>.protobuf``.  Checking (:func:`plan_channel`) is separate from
writing (:func:`upload_channel`), so every input is validated before anything is written.

``content_type`` is whatever SageMaker's ``TrainingInput`` takes (any MIME type,
fedml-aws's ``'csv'``), recorded on the channel as given; channel names follow
SageMaker's ``ChannelName`` rule.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigurationError
from .storage import ObjectStore, file_uri_to_path, parse_s3_uri

__all__ = [
    "ChannelPlan",
    "ChannelSource",
    "check_channel_name",
    "check_content_type",
    "plan_channel",
    "upload_channel",
]

# SageMaker's ChannelName (CreateTrainingJob): 1 to 64 of these characters, whole name.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
# SageMaker's ContentType: at most 256 characters; control characters would break the
# request (and the inputdataconfig.json a script reads).
_CONTENT_TYPE_MAX = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_PARQUET_TYPES = frozenset({"application/x-parquet", "application/vnd.apache.parquet"})


@runtime_checkable
class ChannelSource(Protocol):
    """A data source that can write itself as one channel file (see :mod:`fedsage.data`)."""

    def export_channel(self, path: Path, file_format: str = "csv") -> int:
        """Write the rows to ``path``; return how many were written."""
        ...


@dataclass(frozen=True)
class ChannelPlan:
    """A checked channel input, not yet written anywhere.

    ``kind`` is ``"dataframe"``, ``"source"``, ``"file"``, ``"folder"``, ``"s3"`` or
    ``"bytes"`` (``data`` is then ``(stream, start position)``).
    """

    name: str
    kind: str
    data: Any
    content_type: str | None
    #: S3DataDistributionType: ``FullyReplicated`` (every instance reads everything) or
    #: ``ShardedByS3Key`` (each instance reads a share of the files).
    distribution: str = "FullyReplicated"


def check_content_type(content_type: str | None) -> str | None:
    """Return ``content_type`` unchanged if SageMaker can record it on a channel.

    Any MIME type (``text/csv``, ``application/x-recordio-protobuf``,
    ``text/csv; label_size=0``) and fedml-aws's ``'csv'`` are taken as given.

    Parameters
    ----------
    content_type : str or None
        The channel's content type.

    Returns
    -------
    str or None

    Raises
    ------
    ConfigurationError
        If it is not a string, is empty, longer than 256 characters, or holds a control
        character.
    """
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise ConfigurationError(
            f"the content_type parameter must be a str or None; got {content_type!r} instead"
        )
    if not content_type.strip():
        raise ConfigurationError(
            "the content_type parameter is empty; pass a MIME type such as 'text/csv', or None"
        )
    if len(content_type) > _CONTENT_TYPE_MAX:
        raise ConfigurationError(
            f"the content_type parameter has {len(content_type)} characters; SageMaker takes "
            f"at most {_CONTENT_TYPE_MAX}"
        )
    if _CONTROL.search(content_type):
        raise ConfigurationError(
            f"the content_type parameter {content_type!r} holds a control character (a line "
            "break, tab, ...); pass the MIME type alone, such as 'text/csv'"
        )
    return content_type


def check_channel_name(name: str) -> str:
    """Return ``name`` if it is a valid SageMaker channel name.

    Raises
    ------
    ConfigurationError
        Unless the whole name is 1 to 64 letters, digits, ``.``, ``-`` or ``_``; ``.``
        and ``..`` are refused too, since the channel is a folder named after it.
    """
    if not isinstance(name, str) or not _CHANNEL_NAME.fullmatch(name):
        raise ConfigurationError(
            f"channel name {name!r} is not valid: use 1 to 64 letters, digits, '.', '-' or '_'"
        )
    if name in (".", ".."):
        raise ConfigurationError(
            f"channel name {name!r} is not valid: the channel is a folder "
            f"(/opt/ml/input/data/<name>), and {name!r} would name another one; pick a name "
            "such as 'train'"
        )
    return name


def _local_path(data: str | os.PathLike[str], param: str) -> Path:
    if isinstance(data, str) and data.startswith("file://"):
        return file_uri_to_path(data, param).resolve()
    if isinstance(data, str) and not data.strip():
        raise ConfigurationError(f"the {param} parameter is an empty string; pass a path")
    return Path(data).expanduser().resolve()


def plan_channel(
    name: str, data: Any, content_type: str | None, *, param: str, store: ObjectStore | None
) -> ChannelPlan:
    """Check one input and describe how it will be written; write nothing.

    Parameters
    ----------
    name : str
        The channel (``train``, ``test`` ...).
    data : DataFrame, ChannelSource, str, os.PathLike or io.BytesIO
        The input: a DataFrame, a DbConnection table or query, a path to any file or
        folder (plain, relative to the working folder, or ``file://``), an ``s3://`` URI,
        or a BytesIO (uploaded from its current position).
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
    if isinstance(data, io.BytesIO):
        start = data.tell()
        if data.getbuffer().nbytes <= start:
            raise ConfigurationError(
                f"the {param} parameter is an io.BytesIO with nothing to read from its "
                f"position {start}; call .seek(0) after writing to it"
            )
        return ChannelPlan(name, "bytes", (data, start), content_type)
    if isinstance(data, str) and data.startswith("s3://"):
        uri = parse_s3_uri(data, param)
        if store is not None:
            if uri.bucket != store.bucket:
                raise ConfigurationError(
                    f"the {param} parameter {data!r} is in bucket {uri.bucket!r}, but local "
                    f"mode's store holds bucket {store.bucket!r}; pass an s3:// URI of that "
                    "bucket, a local path or a DataFrame"
                )
            if not store.list(uri.key):
                raise ConfigurationError(
                    f"the {param} parameter {data!r}: no object in the store has that prefix"
                )
        return ChannelPlan(name, "s3", str(uri), content_type)
    if isinstance(data, str) and _URI_SCHEME.match(data) and not data.startswith("file://"):
        raise ConfigurationError(
            f"the {param} parameter {data!r} is a {data.split('://', 1)[0]}:// URI; pass a "
            "local path (plain or file://), an s3:// URI, a DataFrame or a DbConnection source"
        )
    if isinstance(data, (str, os.PathLike)):
        path = _local_path(data, param)
        if path.is_file():
            return ChannelPlan(name, "file", path, content_type)
        if path.is_dir():
            if not any(p.is_file() for p in path.rglob("*")):
                raise ConfigurationError(f"the {param} parameter {data!r} is an empty folder")
            return ChannelPlan(name, "folder", path, content_type)
        raise ConfigurationError(
            f"the {param} parameter {data!r}: no such file or folder ({path})"
        )
    raise ConfigurationError(
        f"the {param} parameter must be a pandas DataFrame, a table or query from a "
        "DbConnection, a path to a file or folder (plain or file://), an s3:// URI or an "
        f"io.BytesIO; got {type(data).__name__} instead"
    )


# Column types whose CSV text DuckDB writes exactly as pandas' to_csv does (float64 as
# the shortest round-trip repr, NaN/NA as an empty cell, inf as inf); float32, bool,
# dates, strings and categories differ in text, so those frames go through pandas.
_DUCKDB_CSV_KINDS = frozenset("iuf")
_DUCKDB_CSV_FLOATS = frozenset({"float64", "Float64"})


def _duckdb_writes_like_pandas(frame: Any) -> bool:
    for dtype in frame.dtypes:
        kind = getattr(dtype, "kind", "")
        if kind not in _DUCKDB_CSV_KINDS:
            return False
        if kind == "f" and str(dtype) not in _DUCKDB_CSV_FLOATS:
            return False
    return bool(frame.columns.is_unique)


def write_frame_csv(frame: Any, path: Path) -> None:
    """Write a DataFrame as fedml-aws does: CSV without header and index.

    The text is what ``frame.to_csv(path, header=False, index=False)`` writes.  Frames of
    integer and float64 columns (what training data usually is) go through DuckDB's CSV
    writer, which writes the same text 3 to 5 times faster than pandas (10,000 rows x 11
    columns: 0.30 -> 0.10 s of CPU; 300,000 x 9: 11.5 -> 2.5 s); any other frame goes
    through pandas.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows.
    path : Path
        The file to write (replaced if it exists).
    """
    if _duckdb_writes_like_pandas(frame):
        import duckdb

        connection = duckdb.connect()
        try:
            connection.from_df(frame).write_csv(str(path), header=False)
            return
        except duckdb.Error:  # a frame DuckDB cannot scan: pandas writes it below
            pass
        finally:
            connection.close()
    frame.to_csv(path, header=False, index=False)


def upload_channel(plan: ChannelPlan, store: ObjectStore, key_prefix: str) -> str:
    """Write a planned channel under ``key_prefix/<channel>/``; return its ``s3://`` prefix."""
    if plan.kind == "s3":
        return str(plan.data)
    prefix = f"{key_prefix}/{plan.name}/"
    if plan.kind == "bytes":
        stream, start = plan.data
        stream.seek(start)
        store.put_stream(prefix + f"{plan.name}.protobuf", stream)
    elif plan.kind == "file":
        store.put_file(prefix + plan.data.name, plan.data)
    elif plan.kind == "folder":
        for path in sorted(p for p in plan.data.rglob("*") if p.is_file()):
            store.put_file(prefix + path.relative_to(plan.data).as_posix(), path)
    else:
        media = (plan.content_type or "").split(";", 1)[0].strip().lower()
        file_format = "parquet" if media in _PARQUET_TYPES else "csv"
        file_name = f"{plan.name}.{file_format}"
        with tempfile.TemporaryDirectory(prefix="fedsage-channel-") as tmp:
            local = Path(tmp) / file_name
            if plan.kind == "dataframe":
                if file_format == "parquet":
                    plan.data.to_parquet(local, index=False)
                else:
                    write_frame_csv(plan.data, local)
            else:
                plan.data.export_channel(local, file_format)
            store.put_temp_file(prefix + file_name, local)
    return store.uri(prefix)
