"""Write Arrow batches to a table or a file so that nothing is ever half written.

:class:`TableWriter` loads rows into a staging table on a database session of its own
and, at :meth:`~TableWriter.commit`, creates, replaces or appends to the target in one
transaction; :class:`FileWriter` writes a temporary file beside the target and renames
it.  Until the commit the target is exactly as it was; an exception, Ctrl-C, a killed
process or a lost connection leaves it so.  Everything that can be checked is checked
before the first row: the ``if_exists`` value, the names, a target that exists with
``if_exists='fail'``, and the columns of a target appended to.

How a dialect stages is its ``staging`` attribute.  On PostgreSQL (``"transaction"``)
the staging table is created inside the writer's own open transaction and renamed to
the target at commit, so a rollback, a killed process or a lost connection removes it
with everything loaded; on SQLite (``"temporary"``) it is a ``TEMPORARY`` table of the
writer's session (it dies with the session), copied into the target by one ``INSERT …
SELECT`` in the commit's transaction; on DuckDB (``"spool"``),
which runs in this process and would hold a staging table in its memory, it is an Arrow
IPC stream in an unnamed temporary file (:func:`tempfile.TemporaryFile`, in ``TMPDIR``:
on Linux it never has a name, so it goes with the process however that ends), scanned
by one ``INSERT … SELECT`` in the commit's transaction; elsewhere (SAP HANA,
``"table"``) it is a table named ``<target>__fedsage_stage_<hex>`` dropped on abort (a
killed process leaves it behind).  The bulk paths are the dialects'
(:mod:`fedsage.data.dialects`): PostgreSQL ``COPY … FROM STDIN``, DuckDB a scan of the
Arrow stream, others ``executemany``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .._home import make_private_dirs
from ..errors import ConfigurationError, DataError
from .export import FILE_FORMATS, check_format

if TYPE_CHECKING:
    from .connection import DbConnection
    from .dialects.base import Dialect
    from .sources import Table

__all__ = ["IF_EXISTS", "FileWriter", "TableWriter", "open_writer"]

logger = logging.getLogger(__name__)

IF_EXISTS = ("fail", "replace", "append")
#: Rows, and Arrow bytes, gathered before one bulk load into staging.
DEFAULT_BUFFER_ROWS = 262_144
DEFAULT_BUFFER_BYTES = 64 << 20
_STAGE_MARK = "__fedsage_stage_"


def _check_if_exists(value: Any, caller: str) -> str:
    if value not in IF_EXISTS:
        raise ConfigurationError(
            f"the if_exists parameter of {caller} must be one of "
            f"{', '.join(repr(v) for v in IF_EXISTS)}; got {value!r} instead")
    return str(value)


def _check_size(value: Any, parameter: str, caller: str = "TableWriter") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"the {parameter} parameter of {caller} must be an int "
                                 f">= 1; got {value!r} instead")
    return value


def _check_schema(arrow_schema: Any, caller: str) -> pa.Schema:
    if not isinstance(arrow_schema, pa.Schema):
        raise ConfigurationError(f"the arrow_schema parameter of {caller} must be a "
                                 f"pyarrow.Schema; got {type(arrow_schema).__name__} instead")
    if len(arrow_schema) == 0:
        raise ConfigurationError(f"the arrow_schema parameter of {caller} has no columns")
    names = arrow_schema.names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"column names must be unique; {', '.join(map(repr, repeated))} "
                        "appear more than once; rename them")
    return arrow_schema


def _as_batches(data: Any, schema: pa.Schema) -> list[pa.RecordBatch]:
    """``data`` (a batch or table with ``schema``'s column names) cast to ``schema``."""
    if isinstance(data, pa.RecordBatch) and data.schema.equals(schema, check_metadata=False):
        return [data] if data.num_rows else []  # the usual case, kept cheap
    if isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.Table):
        table = data
    else:
        raise DataError("write() takes a pyarrow.RecordBatch or pyarrow.Table; got "
                        f"{type(data).__name__}")
    if table.schema.names != schema.names:
        raise DataError(f"the batch has the columns {table.schema.names}; the writer was "
                        f"opened for {schema.names} (same names, same order)")
    if not table.schema.equals(schema, check_metadata=False):
        try:
            table = table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(f"the batch does not fit the writer's schema ({schema}): "
                            f"{exc}") from exc
    return table.combine_chunks().to_batches() if table.num_rows else []


# -- type families, to check that a target accepts the columns appended ---------------

def _sql_family(type_name: str) -> str | None:
    """The family of a catalog type name (``None``: unknown, left to the engine)."""
    name = (type_name or "").upper()
    rules = (("INTERVAL", "interval"), ("BOOL", "bool"), ("INT", "int"),
             ("DOUBLE", "float"), ("FLOAT", "float"), ("REAL", "float"),
             ("DECIMAL", "decimal"), ("NUMERIC", "decimal"), ("SMALLDECIMAL", "decimal"),
             ("TIMESTAMP", "timestamp"), ("DATETIME", "timestamp"), ("SECONDDATE", "timestamp"),
             ("DATE", "date"), ("TIME", "time"), ("CHAR", "string"), ("TEXT", "string"),
             ("CLOB", "string"), ("STRING", "string"), ("UUID", "string"),
             ("BLOB", "binary"), ("BYTEA", "binary"), ("BINARY", "binary"))
    for marker, family in rules:
        if marker in name:
            return family
    return None


_ACCEPTS = {  # target family -> Arrow families it takes without losing anything
    "int": {"int", "bool"}, "float": {"int", "float"}, "decimal": {"int", "decimal"},
    "string": {"string"}, "bool": {"bool"}, "timestamp": {"timestamp", "date"},
    "date": {"date"}, "time": {"time"}, "binary": {"binary"},
}


def _arrow_family(dtype: pa.DataType) -> str:
    t = pa.types
    if t.is_dictionary(dtype):
        return _arrow_family(dtype.value_type)
    for test, family in ((t.is_boolean, "bool"), (t.is_integer, "int"),
                         (t.is_floating, "float"), (t.is_decimal, "decimal"),
                         (t.is_timestamp, "timestamp"), (t.is_date, "date"),
                         (t.is_time, "time")):
        if test(dtype):
            return family
    if t.is_string(dtype) or t.is_large_string(dtype):
        return "string"
    if t.is_binary(dtype) or t.is_large_binary(dtype) or t.is_fixed_size_binary(dtype):
        return "binary"
    if t.is_null(dtype):
        return "null"
    return str(dtype)


class TableWriter:
    """Rows into a staging table; the target is created/replaced/appended in ONE
    transaction at commit.

    Parameters
    ----------
    connection : DbConnection
        Where the target lives.  The writer opens a session of its own (DuckDB: a
        cursor of the same database), so reading the input on ``connection`` while
        writing is fine.
    table : str
        The target table, exactly as stored (quoted, case-sensitive).
    schema : str or None, default=None
        Its schema; default the connection's write schema.
    arrow_schema : pyarrow.Schema
        The columns written, in order.  The target is created with the matching SQL
        types (int64 → BIGINT, float64 → DOUBLE, string → TEXT, decimals, dates and
        timestamps keep theirs).
    if_exists : {'fail', 'replace', 'append'}, default='fail'
        What to do when the target exists: refuse (before anything is written),
        replace it, or add the rows to it (its columns must accept ``arrow_schema``'s).
    buffer_rows : int, default=262144
        Rows gathered before one bulk load into staging.
    buffer_bytes : int, default=67108864
        Or this many bytes of Arrow data (64 MiB), whichever comes first: memory
        stays bounded whatever the row count.

    Raises
    ------
    ConfigurationError
        If ``if_exists`` or ``arrow_schema`` is not valid.
    DataError
        If a name is not a legal identifier, the target exists and ``if_exists`` is
        ``'fail'``, the target's columns do not accept the rows appended, or the
        staging table cannot be created.

    Examples
    --------
    >>> schema = pa.schema([("id", pa.int64()), ("prediction", pa.float64())])
    >>> with TableWriter(db, "SCORES", arrow_schema=schema, if_exists="replace") as w:
    ...     for batch in batches:                                   # doctest: +SKIP
    ...         w.write(batch)
    ...     w.commit(expected_rows=rows_in)
    """

    def __init__(self, connection: DbConnection, table: str, schema: str | None = None, *,
                 arrow_schema: pa.Schema, if_exists: str = "fail",
                 buffer_rows: int = DEFAULT_BUFFER_ROWS,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        from .connection import DbConnection

        caller = "TableWriter"
        self.if_exists = _check_if_exists(if_exists, caller)
        self.arrow_schema = _check_schema(arrow_schema, caller)
        if not isinstance(connection, DbConnection):
            raise ConfigurationError(f"the connection parameter of {caller} must be a "
                                     f"DbConnection; got {type(connection).__name__} instead")
        if connection.closed:
            raise DataError("this DbConnection is closed; open a new one")
        self.dialect: Dialect = connection.dialect
        self.table = self.dialect.check_identifier(table, "table")
        self.schema = connection.write_schema if schema is None else \
            self.dialect.check_identifier(schema, "schema")
        self._columns = [(f.name, self.dialect.arrow_sql_type(f.type, f.name))
                         for f in self.arrow_schema]
        for name in self.arrow_schema.names:
            self.dialect.check_identifier(name, "column")
        self.buffer_rows = _check_size(buffer_rows, "buffer_rows")
        self.buffer_bytes = _check_size(buffer_bytes, "buffer_bytes")
        self._rows = 0  # taken by write()
        self._loaded = 0  # in staging
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._state = "open"
        self.staging = self._staging_name()
        self._session: Any = None
        self._close_session: Any = None
        self._spool: Any = None  # staging = "spool": the file and its Arrow stream writer
        self._spool_writer: Any = None

        def reopen() -> tuple[Any, Any]:
            from .dialects import open_connection

            opened = open_connection(connection.config)
            if connection.write_schema is not None:
                try:
                    opened.dialect.use_schema(opened.dbapi, connection.write_schema)
                except BaseException:
                    opened.close()
                    raise
            return opened.dbapi, opened.close

        self._session, self._close_session = self.dialect.writer_session(connection._conn,
                                                                         reopen)
        # In "transaction" staging, one transaction runs from here to commit/abort.
        self._in_transaction = self.dialect.staging == "transaction"
        try:
            self._check_target()
            if self._in_transaction:
                with self.dialect.translate_errors("BEGIN", "starting the transaction"):
                    self.dialect.begin_write(self._session)
            if self.dialect.staging == "spool":
                self._open_spool()
            else:
                self._run(self.dialect.staging_table(self.staging, self.schema,
                                                     self._columns),
                          "creating the staging table")
        except BaseException:
            self._state = "aborted"
            self._close()
            raise
        logger.info("writing %s through staging table %s", self.target, self.staging)

    def _open_spool(self) -> None:
        """The staging file of ``staging = "spool"``: unnamed, private, gone with us."""
        try:
            # Closed by _close (commit, abort), not by a with block: it outlives this call.
            self._spool = tempfile.TemporaryFile(prefix="fedsage-stage-")  # noqa: SIM115
            self._spool_writer = pa.ipc.new_stream(pa.PythonFile(self._spool, mode="w"),
                                                   self.arrow_schema)
        except OSError as exc:
            raise DataError(f"cannot open a staging file for {self.target} in "
                            f"{tempfile.gettempdir()!r}: {exc}; set TMPDIR to a folder "
                            "with room") from exc

    # -- names and statements --------------------------------------------------------

    @property
    def target(self) -> str:
        """The target as ``"schema"."table"`` (for messages)."""
        return self.dialect.qualified(self.table, self.schema)

    def _staging_name(self) -> str:
        token = _STAGE_MARK + uuid.uuid4().hex[:12]
        room = self.dialect.max_identifier_bytes - len(token)
        prefix = self.table.encode("utf-8")[:room].decode("utf-8", "ignore")
        return prefix + token

    def _run(self, stmt: Any, action: str, *, fetch: bool = False
             ) -> tuple[list[Any], list[str]]:
        """Run a statement on the writer's session; commit unless a transaction is open.

        ``stmt``: a Core statement, or SQL text a dialect built (quoted identifiers).
        """
        sql, params = (stmt, None) if isinstance(stmt, str) else self.dialect.compile(stmt)
        cursor = self._session.cursor()
        try:
            with self.dialect.translate_errors(sql, action):
                if params is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, params)
                result: tuple[list[Any], list[str]] = ([], [])
                if fetch:
                    result = (cursor.fetchall(), [d[0] for d in cursor.description or ()])
        finally:
            cursor.close()
        if not self._in_transaction:
            with self.dialect.translate_errors(sql, "ending the transaction"):
                self.dialect.end_write(self._session, True)
        return result

    def _check_target(self) -> None:
        rows, headers = self._run(self.dialect.target_columns(self.table, self.schema),
                                  f"looking up {self.target}", fetch=True)
        existing = [dict(zip(headers, row, strict=True)) for row in rows]
        if not existing:
            return
        if self.if_exists == "fail":
            raise DataError(
                f"the table {self.target} exists; pass if_exists='replace' to replace it or "
                "if_exists='append' to add the rows to it (or choose another table name)")
        if self.if_exists == "append":
            self._check_append(existing)

    def _check_append(self, existing: list[dict[str, Any]]) -> None:
        by_name = {c["COLUMN_NAME"]: c for c in existing}
        problems = []
        for field in self.arrow_schema:
            column = by_name.get(field.name)
            if column is None:
                near = [n for n in by_name if n.lower() == field.name.lower()]
                hint = f" (it has {near[0]!r}: names are case-sensitive)" if near else ""
                problems.append(f"it has no column {field.name!r}{hint}")
                continue
            family = _sql_family(str(column["DATA_TYPE_NAME"]))
            arrow = _arrow_family(field.type)
            if family is not None and arrow != "null" and arrow not in _ACCEPTS.get(family, ()):
                problems.append(f"its column {field.name!r} is {column['DATA_TYPE_NAME']}, "
                                f"which does not take {field.type} values")
        names = set(self.arrow_schema.names)
        for name, column in by_name.items():
            if (name not in names and column.get("IS_NULLABLE") == "FALSE"
                    and column.get("DEFAULT_VALUE") is None):
                problems.append(f"its column {name!r} is NOT NULL without a default and is "
                                "not written")
        if problems:
            raise DataError(
                f"cannot append to {self.target}: {'; '.join(problems)}. The table has "
                f"{', '.join(map(repr, by_name))}; rename or cast the columns written, or "
                "pass if_exists='replace'")

    # -- writing ---------------------------------------------------------------------

    def _lost(self) -> str:
        lost = False
        with contextlib.suppress(Exception):
            lost = self._session is not None and self.dialect.connection_lost(self._session)
        return ("the database connection was lost (staging died with it); run again once "
                "the database is reachable; " if lost else "")

    def _check_open(self, action: str) -> None:
        if self._state != "open":
            raise DataError(f"cannot {action}: this writer is {self._state}")

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Take a batch (or table) of rows; they are loaded into staging in bulk.

        Batches are gathered until ``buffer_rows`` rows or ``buffer_bytes`` bytes, then
        loaded in one bulk statement (a statement per small batch costs more than its
        rows); :meth:`commit` loads the rest.

        Parameters
        ----------
        batch : pyarrow.RecordBatch or pyarrow.Table
            Rows with the writer's column names, in order (types are cast to
            ``arrow_schema`` where that loses nothing).

        Raises
        ------
        DataError
            If the columns do not match, or the database refuses the rows: the message
            names the row range, the writer is aborted and the target is untouched.
        """
        self._check_open("write")
        for b in _as_batches(batch, self.arrow_schema):
            self._pending.append(b)
            self._pending_rows += b.num_rows
            self._pending_bytes += b.nbytes
            self._rows += b.num_rows
        if self._pending_rows >= self.buffer_rows or self._pending_bytes >= self.buffer_bytes:
            self._flush()

    def _flush(self) -> None:
        """Load the gathered batches into staging (on failure: abort, then raise)."""
        if not self._pending:
            return
        data = pa.Table.from_batches(self._pending)
        first, last = self._loaded, self._loaded + data.num_rows - 1
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        try:
            if self._spool_writer is not None:
                try:
                    self._spool_writer.write_table(data)
                except OSError as exc:
                    raise DataError(f"writing the staging file in {tempfile.gettempdir()!r} "
                                    f"failed: {exc}; set TMPDIR to a folder with room") from exc
                self._loaded += data.num_rows
                return
            self.dialect.load_arrow(self._session, self.staging,
                                    self.dialect.staging_schema(self.schema), data)
            if not self._in_transaction:
                with self.dialect.translate_errors("COMMIT", "ending the transaction"):
                    self.dialect.end_write(self._session, True)
        except DataError as exc:
            lost = self._lost()
            self.abort()
            raise DataError(f"writing rows {first}-{last} to {self.target} failed: {exc}\n"
                            f"  {lost}{self.target} is untouched") from exc
        self._loaded += data.num_rows

    @property
    def rows_written(self) -> int:
        """Rows taken by :meth:`write` so far (loaded into staging in bulk)."""
        return self._rows

    def commit(self, expected_rows: int | None = None) -> int:
        """Check the row count, then publish the rows in one transaction.

        ``fail``/``replace``: (drop the target and) create it from staging; ``append``:
        insert the staged rows into it (created when missing).  Staging is dropped.

        Parameters
        ----------
        expected_rows : int or None, default=None
            Rows the caller read; staging must hold exactly that many.

        Returns
        -------
        int
            Rows committed.

        Raises
        ------
        DataError
            If the count differs or the transaction fails; the writer is aborted and
            the target is as it was.
        """
        self._check_open("commit")
        if expected_rows is not None and (isinstance(expected_rows, bool)
                                          or not isinstance(expected_rows, int)):
            raise ConfigurationError("the expected_rows parameter of commit must be an int "
                                     f"or None; got {expected_rows!r} instead")
        try:
            self._flush()
            staged = self._count()
            if staged != self._rows or (expected_rows is not None and staged != expected_rows):
                raise DataError(
                    f"row count check failed for {self.target}: {expected_rows if expected_rows is not None else self._rows} "  # noqa: E501
                    f"rows expected, {staged} staged; nothing was written, the target is "
                    "untouched")
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self._close()
        logger.info("committed %d rows to %s (%s)", staged, self.target, self.if_exists)
        return staged

    def _count(self) -> int:
        if self._spool is not None:
            return self._loaded  # the spool's rows; the INSERT's own count is checked too
        from sqlalchemy import func, select

        stmt = select(func.count()).select_from(
            self.dialect.relation(self.staging, self.dialect.staging_schema(self.schema)))
        rows, _ = self._run(stmt, "counting the staged rows", fetch=True)
        return int(rows[0][0])

    def _publish(self) -> None:
        ok = False
        if not self._in_transaction:
            with self.dialect.translate_errors("BEGIN", "starting the transaction"):
                self.dialect.begin_write(self._session)
            self._in_transaction = True
        try:
            for stmt, action in self._publish_statements():
                self._run(stmt, action)
            if self._spool is not None:
                self._insert_spool()
            ok = True
        finally:
            self._in_transaction = False
            with self.dialect.translate_errors("COMMIT" if ok else "ROLLBACK",
                                               "ending the transaction"):
                self.dialect.end_write(self._session, ok)

    def _insert_spool(self) -> None:
        """Insert the spooled rows into the target (in the commit's transaction) and
        check that the engine inserted as many as were staged."""
        self._spool_writer.close()
        self._spool.flush()
        self._spool.seek(0)
        action = f"copying the staged rows into {self.target}"
        with self.dialect.translate_errors(f"INSERT INTO {self.target} SELECT … FROM "
                                           "<staging file>", action):
            reader = pa.ipc.open_stream(pa.PythonFile(self._spool, mode="r"))
            inserted = self.dialect.insert_from_reader(self._session, self.table,
                                                       self.schema, self.staging, reader)
        if inserted != self._loaded:
            raise DataError(f"row count check failed for {self.target}: {self._loaded} rows "
                            f"staged, {inserted} inserted; nothing was written, the target "
                            "is untouched")

    def _publish_statements(self) -> list[tuple[Any, str]]:
        """What the commit runs, decided inside its transaction (no ``IF [NOT] EXISTS``:
        SAP HANA has neither)."""
        names = self.arrow_schema.names
        staging_schema = self.dialect.staging_schema(self.schema)
        rows, _ = self._run(self.dialect.target_columns(self.table, self.schema),
                            f"looking up {self.target}", fetch=True)
        exists = bool(rows)
        statements: list[tuple[Any, str]] = []
        if exists and self.if_exists == "replace":
            statements.append((self.dialect.drop_table(self.table, self.schema),
                               f"dropping {self.target}"))
        if self.dialect.staging == "transaction" and not (exists and self.if_exists == "append"):
            # The staging table is the target's twin, beside it: rename, no copy.
            statements.append((self.dialect.rename_table(self.staging, self.schema, self.table),
                               f"renaming the staging table to {self.target}"))
            return statements
        if not (exists and self.if_exists == "append"):
            statements.append((self.dialect.create_target(self.table, self.schema,
                                                          self._columns),
                               f"creating {self.target}"))
        if self.dialect.staging == "spool":
            return statements  # then _insert_spool
        statements += [
            (self.dialect.insert_select(self.table, self.schema, self.staging,
                                        staging_schema, names),
             f"copying the staged rows into {self.target}"),
            (self.dialect.drop_table(self.staging, staging_schema),
             "dropping the staging table"),
        ]
        return statements

    # -- aborting --------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the staging table; the target is untouched.

        Idempotent, and never raises on a dead connection (a temporary table died
        with it).
        """
        if self._state != "open":
            return
        self._state = "aborted"
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        if self._session is not None:
            # A rollback removes a staging table created in the open transaction.
            staged_in_transaction, self._in_transaction = self._in_transaction, False
            with contextlib.suppress(Exception):
                self.dialect.end_write(self._session, False)
            if not staged_in_transaction and self.dialect.staging in ("temporary", "table"):
                with contextlib.suppress(Exception):
                    self._run(self.dialect.drop_table(self.staging,
                                                      self.dialect.staging_schema(self.schema)),
                              "dropping the staging table")
        self._close()
        logger.info("aborted writing %s after %d rows", self.target, self._rows)

    def _close(self) -> None:
        spool, self._spool, self._spool_writer = self._spool, None, None
        if spool is not None:
            with contextlib.suppress(Exception):
                spool.close()
        close, self._close_session = self._close_session, None
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def __repr__(self) -> str:
        return (f"<TableWriter {self.target} if_exists={self.if_exists!r} "
                f"rows={self._rows} {self._state}>")


class FileWriter:
    """Rows into a temporary file beside ``path``, renamed into place at commit.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV or Parquet file to write.
    arrow_schema : pyarrow.Schema
        The columns written, in order.
    if_exists : {'fail', 'replace', 'append'}, default='fail'
        What to do when ``path`` exists.  ``append`` copies the existing file into the
        temporary one first (CSV: its bytes, after checking the header; Parquet: its
        row groups, after checking the schema), so the rename stays atomic.
    file_format : {'csv', 'parquet'} or None, default=None
        Default: from the suffix (``.csv``, ``.parquet``/``.pq``).
    header : bool, default=True
        CSV only: write the column names as the first line.
    buffer_rows : int, default=262144
        Rows gathered before they are written (a Parquet row group per small batch
        would make a slow file).

    Raises
    ------
    ConfigurationError
        If ``if_exists``, ``arrow_schema`` or the format is not valid.
    DataError
        If ``path`` exists with ``if_exists='fail'``, or the file appended to does not
        have the same columns.
    """

    def __init__(self, path: str | Path, *, arrow_schema: pa.Schema, if_exists: str = "fail",
                 file_format: str | None = None, header: bool = True,
                 buffer_rows: int = DEFAULT_BUFFER_ROWS) -> None:
        caller = "FileWriter"
        self.if_exists = _check_if_exists(if_exists, caller)
        self.arrow_schema = _check_schema(arrow_schema, caller)
        if not isinstance(path, (str, Path)) or not str(path):
            raise ConfigurationError(f"the path parameter of {caller} must be a file path; "
                                     f"got {path!r} instead")
        self.path = Path(path).expanduser().absolute()
        self.file_format = self._format(file_format)
        self.header = header
        self.buffer_rows = _check_size(buffer_rows, "buffer_rows", caller)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._rows = 0
        self._state = "open"
        if self.path.is_dir():
            raise DataError(f"{str(self.path)!r} is a folder; pass a file path")
        exists = self.path.exists()
        if exists and self.if_exists == "fail":
            raise DataError(f"the file {str(self.path)!r} exists; pass if_exists='replace' to "
                            "replace it or if_exists='append' to add the rows to it")
        make_private_dirs(self.path.parent)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".part")
        self.temp_path = Path(tmp)
        self._handle: Any = os.fdopen(fd, "wb")
        self._writer: Any = None
        try:
            if exists and self.if_exists == "append":
                self._copy_existing()
            else:
                self._open_writer(self.header)
        except BaseException:
            self.abort()
            raise

    def _format(self, file_format: str | None) -> str:
        if file_format is not None:
            return check_format(file_format)
        suffix = self.path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return "parquet"
        if suffix in (".csv", ".txt"):
            return "csv"
        raise ConfigurationError(
            f"cannot tell the format of {str(self.path)!r} from its suffix; pass "
            f"file_format= one of {', '.join(FILE_FORMATS)}")

    def _open_writer(self, header: bool) -> None:
        if self.file_format == "csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(
                self._handle, self.arrow_schema,
                write_options=pacsv.WriteOptions(include_header=header))
        else:
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self._handle, self.arrow_schema)

    def _copy_existing(self) -> None:
        if self.file_format == "csv":
            self._copy_csv()
        else:
            self._copy_parquet()

    def _copy_csv(self) -> None:
        import shutil

        with self.path.open("rb") as source:
            if self.header:
                first = source.readline().rstrip(b"\r\n").decode("utf-8", "replace")
                expected = ",".join(f'"{n}"' for n in self.arrow_schema.names)
                if first not in (expected, ",".join(self.arrow_schema.names)):
                    raise DataError(
                        f"cannot append to {str(self.path)!r}: its header is {first!r}, the "
                        f"rows written have {self.arrow_schema.names}; pass "
                        "if_exists='replace' or another path")
                source.seek(0)
            shutil.copyfileobj(source, self._handle, 1 << 20)
            source.seek(0, os.SEEK_END)
            if source.tell():
                source.seek(-1, os.SEEK_END)
                if source.read(1) not in (b"\n", b"\r"):
                    self._handle.write(b"\n")
        self._open_writer(header=False)

    def _copy_parquet(self) -> None:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.path)
        try:
            existing = source.schema_arrow
            if existing.names != self.arrow_schema.names or not all(
                    _arrow_family(a.type) == _arrow_family(b.type)
                    for a, b in zip(existing, self.arrow_schema, strict=True)):
                raise DataError(
                    f"cannot append to {str(self.path)!r}: it has the columns {existing}, the "
                    f"rows written have {self.arrow_schema}; pass if_exists='replace' or "
                    "another path")
            self._open_writer(header=False)
            for i in range(source.num_row_groups):
                group = source.read_row_group(i).cast(self.arrow_schema)
                self._writer.write_table(group)
        finally:
            source.close()

    @property
    def rows_written(self) -> int:
        """Rows written by :meth:`write` so far (rows of a file appended to not counted)."""
        return self._rows

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Write a batch (or table) of rows to the temporary file.

        Parameters
        ----------
        batch : pyarrow.RecordBatch or pyarrow.Table
            Rows with the writer's column names, in order.

        Raises
        ------
        DataError
            If the columns do not match.
        """
        if self._state != "open":
            raise DataError(f"cannot write: this writer is {self._state}")
        for b in _as_batches(batch, self.arrow_schema):
            self._pending.append(b)
            self._pending_rows += b.num_rows
            self._rows += b.num_rows
        if self._pending_rows >= self.buffer_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending))
            self._pending, self._pending_rows = [], 0

    def commit(self, expected_rows: int | None = None) -> int:
        """Check the row count, then move the file into place (atomic rename).

        Parameters
        ----------
        expected_rows : int or None, default=None
            Rows the caller read; exactly that many must have been written.

        Returns
        -------
        int
            Rows written.

        Raises
        ------
        DataError
            If the count differs; the writer is aborted and ``path`` untouched.
        """
        if self._state != "open":
            raise DataError(f"cannot commit: this writer is {self._state}")
        try:
            if expected_rows is not None and expected_rows != self._rows:
                raise DataError(f"row count check failed for {str(self.path)!r}: "
                                f"{expected_rows} rows expected, {self._rows} written; the "
                                "file is untouched")
            self._flush()
            self._writer.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return self._rows

    def abort(self) -> None:
        """Remove the temporary file; ``path`` is untouched.  Idempotent."""
        if self._state != "open":
            return
        self._state = "aborted"
        for close in (getattr(self._writer, "close", None), self._handle.close):
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def __repr__(self) -> str:
        return (f"<FileWriter {str(self.path)!r} {self.file_format} "
                f"if_exists={self.if_exists!r} rows={self._rows} {self._state}>")


def open_writer(target: Table | Sequence[Any] | str | Path, *, arrow_schema: pa.Schema,
                if_exists: str = "fail", file_format: str | None = None
                ) -> TableWriter | FileWriter:
    """Open the writer for a target: a table or a CSV/Parquet file.

    Parameters
    ----------
    target : Table or (DbConnection, str) or str or pathlib.Path
        ``db.table("NAME")`` or a ``(db, "NAME")`` pair (the connection's write
        schema, unless ``db.table`` was given another schema), or a file path.
    arrow_schema : pyarrow.Schema
        The columns written.
    if_exists : {'fail', 'replace', 'append'}, default='fail'
    file_format : {'csv', 'parquet'} or None, default=None
        Files only; default from the suffix.

    Returns
    -------
    TableWriter or FileWriter

    Raises
    ------
    ConfigurationError
        If ``target`` is none of these.
    """
    from .connection import DbConnection
    from .sources import Table

    if isinstance(target, Table):
        if not isinstance(target.connection, DbConnection):
            raise ConfigurationError("the target Table must belong to a DbConnection")
        # db.table(NAME) carries the read schema; tables are written to the write schema
        # (they differ on SAP HANA, where the space schema is read-only).
        connection = target.connection
        schema = None if target.schema == connection.schema else target.schema
        return TableWriter(connection, target.name, schema,
                           arrow_schema=arrow_schema, if_exists=if_exists)
    if (isinstance(target, tuple) and len(target) == 2
            and isinstance(target[0], DbConnection)):
        return TableWriter(target[0], target[1], arrow_schema=arrow_schema,
                           if_exists=if_exists)
    if isinstance(target, (str, Path)):
        return FileWriter(target, arrow_schema=arrow_schema, if_exists=if_exists,
                          file_format=file_format)
    raise ConfigurationError(
        "the target parameter of open_writer must be db.table(NAME), (db, NAME) or a file "
        f"path; got {type(target).__name__} instead")
