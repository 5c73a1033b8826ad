"""What to score and where to write: inputs as Arrow batch streams, targets as writers.

Inputs: a ``db.table(...)`` / ``db.query(...)`` source, a table/view name or query text
with a :class:`~fedsage.data.DbConnection`, a pandas DataFrame, or a CSV (with a header
row) / Parquet file.  Targets: a table name on a connection, a ``db.table(...)`` object,
or a ``.csv`` / ``.parquet`` path.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data._arrow import empty_batch
from ..errors import ConfigurationError, DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from ..data import DbConnection

__all__ = [
    "FILE_SUFFIXES",
    "Input",
    "Target",
    "check_input_kind",
    "check_target_free",
    "open_input",
    "resolve_target",
]

FILE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
READ_ROWS = 65536  # rows per batch read from a database or a Parquet file


@dataclass
class Input:
    """An opened input: its description, schema, total rows if known, and its batches."""

    description: str
    schema: pa.Schema
    rows: int | None
    batches: Iterator[pa.RecordBatch]
    connection: DbConnection | None = None
    #: A whole table read (a scan, no query of the caller's): its engine needs little
    #: working memory of its own.
    table_scan: bool = False
    #: The whole "table" read is a view (or may be one): its query may join or aggregate.
    #: Looked up only where it matters, on an engine whose memory is capped (DuckDB).
    view: bool = False

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


def _projected(data: Any, columns: list[str] | None) -> Any:
    """A whole table read as ``SELECT <columns>`` when only some of its columns are needed
    (DuckDB and Parquet read only those; every engine sends less).  Unknown columns: the
    table itself, so the column check names them."""
    from ..data import DbConnection
    from ..data.sources import Table

    if not columns or not isinstance(data, Table) or not isinstance(data.connection, DbConnection):
        return data
    conn = data.connection
    qualified = conn.dialect.qualified(data.name, data.schema)
    probe = list(conn.iter_batches(conn.query(f"SELECT * FROM {qualified} WHERE 1 = 0")))
    names = probe[0].schema.names
    if len(columns) == len(names) or not set(columns) <= set(names):
        return data
    return conn.query(f"SELECT {', '.join(map(conn.dialect.quote, columns))} FROM {qualified}")


def _is_view(table: Any) -> bool:
    """Whether ``db.table(name)`` names a view (True too when it cannot tell cheaply: a
    table of another schema than the connection's).  False without a catalog query on
    an engine whose memory is not capped while scoring: nothing depends on it there."""
    from ..data import DbConnection

    conn = table.connection
    if not isinstance(conn, DbConnection) or not conn.dialect.caps_memory:
        return False
    if table.schema not in (None, conn.schema):
        return True
    try:
        rows, _ = conn.get_view_by_name(table.name)
    except DataError:  # a catalog it may not read: the larger room, to be safe
        return True
    return any(row[0] == table.name for row in rows)


def check_input_kind(data: Any, connection: DbConnection | None, param: str = "data") -> None:
    """Refuse an input of no known kind, or a name without a connection (nothing is read).

    Raises
    ------
    ConfigurationError
        The same errors :func:`open_input` raises for these cases.
    """
    from ..data.sources import Query, Table

    if isinstance(data, Query | Table) or _file_format(data) is not None:
        return
    if isinstance(data, str):
        if connection is None:
            raise _needs_connection(data, param)
        return
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        return
    raise _unknown_kind(data, param)


def _needs_connection(data: str, param: str) -> ConfigurationError:
    return ConfigurationError(
        f"the {param} parameter {data!r} is a table name or a query, so a connection is "
        "needed: pass connection=DbConnection(...), or give db.table(name) / "
        "db.query(sql) instead"
    )


def _unknown_kind(data: Any, param: str) -> ConfigurationError:
    return ConfigurationError(
        f"the {param} parameter must be db.table(...), db.query(...), a table name or query "
        "with a connection, a pandas DataFrame, or a .csv/.parquet path; got "
        f"{type(data).__name__}"
    )


def open_input(
    data: Any,
    connection: DbConnection | None,
    param: str = "data",
    columns: list[str] | None = None,
) -> Input:
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
    columns : list of str, optional
        The only columns needed (when known), so a table or Parquet file reads just those.

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

    from ..data.sources import Query, Table

    if isinstance(data, str) and connection is not None and _file_format(data) is None:
        data = connection._source(data)  # a Table or a Query on the connection
    scan = isinstance(data, Table)
    view = scan and _is_view(data)
    data = _projected(data, columns)
    if isinstance(data, Query):
        reader = data.connection
        batches = reader.iter_batches(data, READ_ROWS)
        schema, stream = _with_first(batches)
        from ..data import DbConnection

        conn = reader if isinstance(reader, DbConnection) else None
        return Input(repr(data), schema, None, _closing(stream, batches), conn, scan, view)
    fmt = _file_format(data)
    if fmt is not None:
        return _open_file(Path(data), fmt, columns)
    if isinstance(data, str):
        if connection is None:
            raise _needs_connection(data, param)
        batches = connection.iter_batches(data, READ_ROWS)
        schema, stream = _with_first(batches)
        return Input(data, schema, None, _closing(stream, batches), connection)
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        table = _from_pandas(data, param)
        return Input(
            f"DataFrame ({table.num_rows} rows)",
            table.schema,
            table.num_rows,
            iter(table.to_batches(READ_ROWS) or [pa.RecordBatch.from_pylist([], table.schema)]),
        )
    raise _unknown_kind(data, param)


def _from_pandas(data: Any, param: str) -> pa.Table:
    """A DataFrame as Arrow; a column Arrow cannot type (numbers mixed with text) is named."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for name in data.columns:
            try:
                pa.array(data[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ConfigurationError(
                    f"column {str(name)!r} of the {param} parameter's DataFrame mixes values of "
                    f"different types ({exc}); convert it first, e.g. "
                    f"pd.to_numeric(df[{str(name)!r}], errors='coerce') and drop or fill the NaNs"
                ) from exc
        raise ConfigurationError(
            f"the {param} parameter's DataFrame cannot be converted: {exc}"
        ) from exc


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


def _open_file(path: Path, fmt: str, columns: list[str] | None = None) -> Input:
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"the input file {str(path)!r} does not exist")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            schema = parquet.schema_arrow
            if columns and set(columns) <= set(schema.names):
                schema = pa.schema([schema.field(c) for c in columns])
            else:
                columns = None
            batches: Iterator[pa.RecordBatch] = parquet.iter_batches(
                batch_size=READ_ROWS, columns=columns
            )
            first = list(itertools.islice(batches, 1)) or [empty_batch(schema)]
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
        yield empty_batch(reader.schema)


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


def check_target_free(target: Target, if_exists: str) -> None:
    """With ``if_exists='fail'``, refuse a target that exists (before any model starts).

    Raises
    ------
    DataError
        If the table or file exists; the message gives the two other choices.
    """
    if if_exists != "fail":
        return
    if target.path is not None:
        exists = target.path.exists()
    else:
        assert target.connection is not None and target.table is not None
        conn = target.connection
        found = conn._run(
            conn.dialect.target_columns(target.table, target.schema),
            f"looking up {target}",
        )
        exists = bool(found and found[0])
    if exists:
        raise DataError(
            f"the target {target} exists; pass if_exists='replace' to replace it or "
            "if_exists='append' to add the rows to it (or choose another target)"
        )


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
        conn.dialect.check_identifier(target.name, param)
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
        connection.dialect.check_identifier(target, param)
        return Target(connection=connection, table=target, schema=connection.write_schema)
    raise ConfigurationError(
        f"the {param} parameter must be a table name, db.table(name) or a .csv/.parquet path; "
        f"got {type(target).__name__}"
    )
