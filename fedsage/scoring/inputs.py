"""What to score and where to write: inputs as Arrow batch streams, targets as writers.

Inputs: a ``db.table(...)`` / ``db.query(...)`` source, a table/view name or query text
with a :class:`~fedsage.data.DbConnection`, a pandas DataFrame, or a CSV (with a header
row) / Parquet file.  Targets: a table name on a connection, a ``db.table(...)`` object,
or a ``.csv`` / ``.parquet`` path.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from ..data import DbConnection

__all__ = ["FILE_SUFFIXES", "Input", "Target", "open_input", "resolve_target"]

FILE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
READ_ROWS = 65536  # rows per batch read from a database or a Parquet file
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Input:
    """An opened input: its description, schema, total rows if known, and its batches."""

    description: str
    schema: pa.Schema
    rows: int | None
    batches: Iterator[pa.RecordBatch]
    connection: DbConnection | None = None

    def close(self) -> None:
        """Stop reading (ends the database read's transaction)."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()


def _file_format(value: Any) -> str | None:
    if isinstance(value, Path) or (
        isinstance(value, str) and Path(value).suffix.lower() in FILE_SUFFIXES
    ):
        suffix = Path(value).suffix.lower()
        if suffix not in FILE_SUFFIXES:
            raise ConfigurationError(
                f"cannot tell the format of {str(value)!r}: name the file .csv, .parquet or .pq"
            )
        return FILE_SUFFIXES[suffix]
    return None


def _with_first(batches: Iterator[pa.RecordBatch]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Read the first batch (which gives the schema) and put it back in front."""
    first = next(batches)
    return first.schema, itertools.chain([first], batches)


def open_input(data: Any, connection: DbConnection | None, param: str = "data") -> Input:
    """Open ``data`` for streaming.

    Parameters
    ----------
    data : Table, Query, str, pathlib.Path or pandas.DataFrame
        What to score.  A ``str`` is a file if it ends in ``.csv``/``.parquet``/``.pq``,
        otherwise a table/view name or a SELECT on ``connection``.
    connection : DbConnection or None
        Needed when ``data`` is a table name or query text.
    param : str
        The parameter's name for messages.

    Returns
    -------
    Input

    Raises
    ------
    ConfigurationError
        If ``data`` is of no known kind, or a name comes without a connection.
    DataError
        If the table, query or file cannot be read (missing table, bad SQL, ...).
    """
    import pyarrow as pa

    from ..data.sources import Query

    if isinstance(data, Query):
        reader = data.connection
        batches = reader.iter_batches(data, READ_ROWS)
        schema, stream = _with_first(batches)
        from ..data import DbConnection

        conn = reader if isinstance(reader, DbConnection) else None
        return Input(repr(data), schema, None, _closing(stream, batches), conn)
    fmt = _file_format(data)
    if fmt is not None:
        return _open_file(Path(data), fmt)
    if isinstance(data, str):
        if connection is None:
            raise ConfigurationError(
                f"the {param} parameter {data!r} is a table name or a query, so a connection is "
                "needed: pass connection=DbConnection(...), or give db.table(name) / "
                "db.query(sql) instead"
            )
        batches = connection.iter_batches(data, READ_ROWS)
        schema, stream = _with_first(batches)
        return Input(data, schema, None, _closing(stream, batches), connection)
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        table = pa.Table.from_pandas(data, preserve_index=False)
        return Input(
            f"DataFrame ({table.num_rows} rows)",
            table.schema,
            table.num_rows,
            iter(table.to_batches(READ_ROWS) or [pa.RecordBatch.from_pylist([], table.schema)]),
        )
    raise ConfigurationError(
        f"the {param} parameter must be db.table(...), db.query(...), a table name or query "
        "with a connection, a pandas DataFrame, or a .csv/.parquet path; got "
        f"{type(data).__name__}"
    )


def _is_connection(reader: Any) -> bool:
    from ..data import DbConnection

    return isinstance(reader, DbConnection)


def _closing(stream: Iterator[pa.RecordBatch], source: Iterator[Any]) -> Iterator[pa.RecordBatch]:
    try:
        yield from stream
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _open_file(path: Path, fmt: str) -> Input:
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"the input file {str(path)!r} does not exist")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            schema = parquet.schema_arrow
            batches: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_size=READ_ROWS)
            first = list(itertools.islice(batches, 1)) or [pa.RecordBatch.from_pylist([], schema)]
            return Input(
                str(path), schema, parquet.metadata.num_rows, itertools.chain(first, batches)
            )
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20))
        return Input(str(path), reader.schema, None, _csv_batches(reader, path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {fmt} file {str(path)!r}: {exc}") from exc


def _csv_batches(reader: Any, path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    empty = True
    try:
        for batch in reader:
            empty = False
            yield batch
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot read CSV file {str(path)!r}: {exc}") from exc
    if empty:
        yield pa.RecordBatch.from_pylist([], reader.schema)


@dataclass
class Target:
    """Where predictions go: a table on a connection, or a file."""

    connection: DbConnection | None = None
    table: str | None = None
    schema: str | None = None
    path: Path | None = None
    file_format: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.schema}.{self.table}" if self.schema else str(self.table)


def check_table_name(name: Any, param: str, dialect: str | None) -> str:
    """A table name fedsage can quote on every engine (SAP HANA: 127, PostgreSQL: 63 bytes)."""
    limit = 63 if dialect == "postgresql" else 127
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or _CONTROL.search(name)
        or len(name.encode("utf-8")) > limit
    ):
        raise ConfigurationError(
            f"the {param} parameter must be a table name of 1 to {limit} bytes without control "
            f"characters or surrounding spaces; got {name!r} instead"
        )
    return name


def resolve_target(target: Any, connection: DbConnection | None, param: str = "target") -> Target:
    """Turn ``target`` into a :class:`Target` (checked, nothing written).

    Raises
    ------
    ConfigurationError
        If the target is of no known kind, its name is not legal, or a table name comes
        without a connection.
    """
    from ..data.sources import Table

    if isinstance(target, Table):
        if not _is_connection(target.connection):
            raise ConfigurationError(f"the {param} parameter's table has no DbConnection")
        conn: DbConnection = target.connection  # type: ignore[assignment]
        check_table_name(target.name, param, conn.dialect.name)
        return Target(connection=conn, table=target.name, schema=target.schema)
    fmt = _file_format(target)
    if fmt is not None:
        path = Path(target)
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"the {param} parameter {str(path)!r} is in a folder that does not exist"
            )
        return Target(path=path, file_format=fmt)
    if isinstance(target, str):
        if connection is None:
            raise ConfigurationError(
                f"the {param} parameter {target!r} is a table name, so a connection is needed: "
                "pass connection=DbConnection(...) or db.table(name), or a .csv/.parquet path"
            )
        check_table_name(target, param, connection.dialect.name)
        return Target(connection=connection, table=target, schema=connection.write_schema)
    raise ConfigurationError(
        f"the {param} parameter must be a table name, db.table(name) or a .csv/.parquet path; "
        f"got {type(target).__name__}"
    )
