"""DuckDB: the embedded warehouse (and ``duckdb:///path`` URLs).

Statements are compiled with SQLAlchemy's PostgreSQL dialect in ``qmark`` style, whose
SQL DuckDB accepts; results stream through DuckDB's Arrow export
(``to_arrow_reader``); bulk inserts go through a registered Arrow table.

DuckDB's ``execute`` runs every statement of a text, so caller SQL is parsed by DuckDB
first (``extract_statements``) and the one parsed statement object is what runs: a
read must be exactly one statement DuckDB classifies as a SELECT, a write exactly one
statement.  fedsage never wraps caller SQL in DuckDB's ``COPY (...) TO``.

Parquet files are written by DuckDB's own (multi-threaded) writer through the relation
API: the parsed statement becomes a relation (``cursor.sql(statement, params=...)``)
whose ``write_parquet`` writes a temporary file that is renamed into place.  Only
results whose every column DuckDB encodes as pyarrow's writer would (same Arrow type
and values on reading back, :data:`PARQUET_SAME_TYPES`) go that way; others (HUGEINT,
TIMESTAMPTZ, ENUM, UUID, JSON, nested types, duplicate names, ...) are written from
Arrow batches as on every engine.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..._home import atomic_path
from ...errors import DataError
from .base import Dialect, Progress

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine.interfaces import Dialect as SADialect
    from sqlalchemy.sql import ClauseElement

__all__ = ["PARQUET_SAME_TYPES", "DuckDBDialect", "connect_duckdb"]

_READ_ONLY_TYPES = frozenset({"SELECT"})

#: DuckDB column types (``DuckDBPyType.id``) that DuckDB's Parquet writer stores so that
#: pyarrow and pandas read them back exactly as the file pyarrow's writer makes from
#: DuckDB's Arrow export: same Arrow type (timezone and unit included), same values.
#: Left out, because DuckDB's file reads back otherwise: HUGEINT/UHUGEINT (double, not
#: decimal128(38, 0)), TIMESTAMPTZ (tz ``UTC``, not the session's time zone), TIMETZ
#: (shifted to UTC), TIMESTAMP_S (us, not ms), ENUM (string, not dictionary), UUID and
#: JSON (extension types, not string), BIT, INTERVAL, and nested types.
PARQUET_SAME_TYPES = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint",
    "uinteger", "ubigint", "float", "double", "decimal", "varchar", "blob", "date", "time",
    "timestamp", "timestamp_ms", "timestamp_ns"})


class DuckDBSession:
    """A DuckDB connection whose cursors share one default schema.

    DuckDB's ``cursor()`` opens a fresh connection state, so a ``USE`` on the parent
    is not inherited; the session replays it on every new cursor.
    """

    def __init__(
        self, conn: duckdb.DuckDBPyConnection, settings: dict[str, Any] | None = None
    ) -> None:
        self.conn = conn
        self.use: str | None = None
        #: The configuration the database was opened with (a ``duckdb://`` URL's query).
        self.settings = dict(settings or {})

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self.conn.cursor()
        if self.use is not None:
            cursor.execute(self.use)
        return cursor

    def extract_statements(self, sql: str) -> Any:
        return self.conn.extract_statements(sql)

    def commit(self) -> None:
        """Nothing to do: statements run in autocommit mode."""

    def rollback(self) -> None:
        """Nothing to do: statements run in autocommit mode."""

    def close(self) -> None:
        self.conn.close()


def connect_duckdb(path: str, settings: dict[str, Any] | None = None) -> DuckDBSession:
    """Open (creating if needed) the DuckDB file ``path`` (``:memory:`` for none).

    ``settings`` are DuckDB configuration options (a ``duckdb://`` URL's query).
    """
    return DuckDBSession(duckdb.connect(path, config=settings or {}), settings)


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _bytes(text: str) -> float | None:
    """``'18.8 GiB'`` (how DuckDB shows a memory setting) in bytes; None if unreadable."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text or "")
    if not found or found.group(2).lower() not in _UNITS:
        return None
    try:
        return float(found.group(1)) * _UNITS[found.group(2).lower()]
    except ValueError:
        return None


def _kinds(statements: Any) -> set[str]:
    return {str(s.type).rsplit(".", 1)[-1] for s in statements}


def _arrow_reader(cursor: Any, statement: Any, params: Any,
                  batch_rows: int) -> pa.RecordBatchReader:
    relation = cursor.sql(statement, params=params)
    # DuckDB 1.x calls it fetch_record_batch; 2.x added to_arrow_reader.
    method = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    return method(batch_rows)


def _same_as_arrow_writer(relation: duckdb.DuckDBPyRelation) -> bool:
    """Whether DuckDB's Parquet file of ``relation`` reads back as pyarrow's would."""
    names = [name.lower() for name in relation.columns]
    if len(set(names)) != len(names):  # DuckDB's writer renames "a", "A" to "a", "A_1"
        return False
    for dtype in relation.types:
        kind = dtype.id
        # An alias keeps its base type's id (JSON is "varchar"): compare the full name too.
        if kind not in PARQUET_SAME_TYPES or (
                kind != "decimal" and str(dtype).lower() != kind):
            return False
    return True


def _parquet_rows(cursor: Any, target: str) -> int:
    """Rows in the Parquet file ``target``, from its footer (no second scan)."""
    if any(ch in target for ch in "*?[{"):
        # DuckDB's readers take a name with these as a glob pattern, which could match
        # other files; pyarrow reads exactly this one (imported only here).
        import pyarrow.parquet as pq

        return int(pq.read_metadata(target).num_rows)
    row = cursor.execute("SELECT count(*) FROM read_parquet(?)", [target]).fetchone()
    return int(row[0]) if row is not None else 0


class _Pinned:
    """One DuckDB connection used for every statement of a writer.

    DuckDB's ``cursor()`` opens a new connection, which would not see the writer's
    temporary table; here ``cursor()`` hands out the same connection (closing it is
    left to :meth:`close`).
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.in_transaction = False

    def cursor(self) -> _Pinned:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def close(self) -> None:
        """A cursor's close: the connection stays open until :meth:`close_session`."""

    def close_session(self) -> None:
        self.conn.close()


class DuckDBDialect(Dialect):
    """The DuckDB dialect."""

    name = "duckdb"
    driver_errors = (duckdb.Error,)

    quote_char = '"'

    def __init__(self) -> None:
        super().__init__()

    def _make_sa_dialect(self) -> SADialect:
        from sqlalchemy.dialects import postgresql

        return postgresql.dialect(paramstyle="qmark")

    def views(self, schema: str | None, name_contains: str | None = None) -> ClauseElement:
        """User views from ``duckdb_views()`` (DuckDB's own catalog views are internal)."""
        from sqlalchemy import func, literal, select

        v = func.duckdb_views().table_valued("schema_name", "view_name", "internal")
        stmt = select(v.c.view_name.label("VIEW_NAME"), literal("VIEW").label("VIEW_TYPE")).where(
            v.c.schema_name == self._schema_filter(schema), v.c.internal.is_(False))
        if name_contains is not None:
            stmt = stmt.where(func.lower(v.c.view_name).contains(name_contains.lower(),
                                                                 autoescape=True))
        return stmt.order_by(v.c.view_name)

    def use_schema(self, conn: Any, schema: str) -> None:
        """``USE database.schema``: unqualified names go to ``schema``."""
        with self.translate_errors("SELECT current_database()", "setting the default schema"):
            cursor = conn.cursor()
            database = cursor.execute("SELECT current_database()").fetchone()[0]
            sql = f"USE {self.quote(database)}.{self.quote(schema)}"
            cursor.execute(sql)
            cursor.close()
            conn.use = sql

    def end(self, conn: Any, ok: bool) -> None:
        """Nothing to do: fedsage runs DuckDB statements in autocommit mode."""

    caps_memory = True

    @contextlib.contextmanager
    def bounded_memory(self, conn: Any, limit: int) -> Iterator[bool]:
        """Lower ``memory_limit`` to ``limit`` bytes while the block runs, then ``RESET`` it.

        DuckDB's buffer pool keeps every block a scan read until the limit (default 80%
        of RAM) presses, so a long read grows the process by the table's size.  The
        limit is the database's, shared by every connection to it, so it is lowered only
        when fedsage can put it back exactly: the database was opened by fedsage without
        a ``memory_limit``/``max_memory`` setting (so ``RESET`` restores what was in
        effect), the current limit is higher, and DuckDB can spill to a temporary
        directory (so a bigger need spills instead of failing).  Yields whether it did.
        """
        settings = {k.lower() for k in getattr(conn, "settings", {"memory_limit": None})}
        cursor = conn.cursor()
        lowered = False
        try:
            if not settings & {"memory_limit", "max_memory"}:
                current, spill = cursor.execute(
                    "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
                ).fetchone()
                now = _bytes(str(current))
                if now is not None and now > limit and spill:
                    with contextlib.suppress(duckdb.Error):  # cannot free enough: no cap
                        cursor.execute(f"SET memory_limit = '{int(limit)}B'")
                        lowered = True
            yield lowered
        finally:
            try:
                if lowered:
                    cursor.execute("RESET memory_limit")
            finally:
                cursor.close()

    def _one_select(self, conn: Any, sql: str) -> Any:
        """Parse ``sql`` with DuckDB; return its one statement if it is a SELECT."""
        with self.translate_errors(sql, "parsing the query"):
            statements = conn.extract_statements(sql)
        if len(statements) != 1 or not _kinds(statements) <= _READ_ONLY_TYPES:
            raise DataError(
                f"only one read-only statement (SELECT) can run here; DuckDB parsed "
                f"{len(statements)} statement(s) of type {', '.join(sorted(_kinds(statements)))}"
                ". Use the table methods (insert_into_table, update_table, ...) to change data"
            )
        return statements[0]

    def check_query(self, conn: Any, sql: str) -> None:
        """Refuse anything DuckDB's parser does not take as exactly one SELECT."""
        self._one_select(conn, sql)

    def run_statement(self, cursor: Any, sql: str, params: Any = None) -> None:
        """Run the one statement DuckDB parses from ``sql`` (a second one is refused)."""
        statements = cursor.extract_statements(sql)
        if len(statements) != 1:
            raise DataError(f"one statement can run here; DuckDB parsed {len(statements)} "
                            f"({', '.join(sorted(_kinds(statements)))})")
        cursor.execute(statements[0], params)

    def fetch_query(self, conn: Any, sql: str, params: Any) -> tuple[list[Any], list[str]]:
        """Run the one SELECT DuckDB parsed from ``sql`` and fetch every row."""
        statement = self._one_select(conn, sql)
        cursor = conn.cursor()
        try:
            with self.translate_errors(sql, "running the query"):
                cursor.execute(statement, params)
                headers = [d[0] for d in cursor.description or ()]
                return cursor.fetchall(), headers
        finally:
            cursor.close()

    def iter_arrow(self, conn: Any, sql: str, params: Any,
                   batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Stream the one SELECT parsed from ``sql`` through DuckDB's own Arrow export."""
        from .._arrow import empty_batch

        statement = self._one_select(conn, sql)
        cursor = conn.cursor()
        try:
            with self.translate_errors(sql, "running the query"):
                reader = _arrow_reader(cursor, statement, params, batch_rows)
            empty = True
            with self.translate_errors(sql, "reading the result"):
                for batch in reader:
                    empty = False
                    yield batch
            if empty:
                yield empty_batch(reader.schema)
        finally:
            cursor.close()

    has_native_parquet = True

    def write_parquet(self, conn: Any, sql: str, params: Any, path: Path,
                      progress: Progress | None) -> int | None:
        """Write the one SELECT parsed from ``sql`` with DuckDB's own Parquet writer.

        The parsed statement becomes a relation whose ``write_parquet`` (several
        threads, Snappy, DuckDB's row groups of 122,880 rows) writes a temporary file
        beside ``path``, ``fsync``-ed and renamed into place.  ``None`` (nothing
        written) when a column's type is not in :data:`PARQUET_SAME_TYPES`.
        ``progress`` is called once, with the rows written.
        """
        statement = self._one_select(conn, sql)
        cursor = conn.cursor()
        try:
            # DuckDB draws its own progress bar on stdout when a statement runs over 2 s
            # (over the CLI's bar and output); this cursor is a session of its own.
            cursor.execute("SET enable_progress_bar = false")
            with self.translate_errors(sql, "running the query"):
                relation = cursor.sql(statement, params=params)
            if not _same_as_arrow_writer(relation):
                return None
            with atomic_path(Path(path)) as tmp:
                # Absolute: DuckDB would expand a leading "~" of a relative name.
                target = str(tmp.absolute())
                with self.translate_errors(sql, "writing the Parquet file"):
                    relation.write_parquet(target, compression="snappy")
                with self.translate_errors(sql, "counting the rows written"):
                    rows = _parquet_rows(cursor, target)
        finally:
            cursor.close()
        if progress is not None:
            progress(rows)
        return rows

    def _table_comment(self, t: Any) -> Any:
        from sqlalchemy import literal_column

        return literal_column("table_comment")

    def _column_comment(self, c: Any) -> Any:
        from sqlalchemy import literal_column

        return literal_column("column_comment")

    def insert_arrow(self, conn: Any, name: str, schema: str | None, data: pa.Table) -> None:
        """Insert by scanning a registered Arrow table: one statement, no per-row calls."""
        from sqlalchemy import select
        from sqlalchemy.sql.expression import column, table

        view = "__fedsage_insert"
        names = data.column_names
        source: Any = select(*[column(n) for n in names]).select_from(table(view))
        stmt = self.insert(name, schema, names).from_select(names, source)  # type: ignore[attr-defined]
        sql, params = self.compile(stmt)
        cursor = conn.cursor()
        try:
            cursor.register(view, data)
            with self.translate_errors(sql, f"inserting into {name!r}"):
                cursor.execute(sql, params)
        finally:
            cursor.close()

    # -- writing (fedsage.data.writer) --------------------------------------------

    # A spool file, and one INSERT ... SELECT from it at commit.  DuckDB runs in the
    # caller's process, so wherever it staged, the caller held the rows: inside one open
    # transaction until its commit (5M rows of scores kept ~320 MB more at the end), in a
    # TEMPORARY table as in-memory blocks of the buffer pool (~100 MB for 5M rows, which
    # pushed the scanned table's blocks out, then spilled to the temp directory once
    # over memory_limit).  An Arrow IPC file costs a write to the page cache per load
    # and is read back once, as the temporary table was.
    staging = "spool"

    def writer_session(self, conn: Any,
                       reopen: Callable[[], tuple[Any, Callable[[], None]]]
                       ) -> tuple[Any, Callable[[], None]]:
        """A connection of its own on the same database (``cursor()``), pinned.

        A second ``duckdb.connect`` of the file would clash with the first one's
        settings; a cursor shares the database and has its own temporary tables and
        transactions.
        """
        pinned = _Pinned(conn.cursor())
        return pinned, pinned.close_session

    def begin_write(self, conn: Any) -> None:
        """``BEGIN TRANSACTION`` (fedsage runs DuckDB in autocommit mode otherwise)."""
        conn.execute("BEGIN TRANSACTION")
        conn.in_transaction = True

    def end_write(self, conn: Any, ok: bool) -> None:
        """``COMMIT`` or ``ROLLBACK`` the transaction :meth:`begin_write` opened, if any
        (other statements ran in autocommit mode: nothing to end)."""
        if not getattr(conn, "in_transaction", False):
            return
        conn.in_transaction = False
        conn.execute("COMMIT" if ok else "ROLLBACK")

    def target_columns(self, name: str, schema: str | None) -> ClauseElement:
        """Columns of a table of the current database from ``duckdb_columns()``.

        Temporary tables (database ``temp``) are left out; ``information_schema``
        lists them under schema ``main`` too.
        """
        from sqlalchemy import case, func, select

        c = func.duckdb_columns().table_valued(
            "database_name", "schema_name", "table_name", "column_name", "column_index",
            "data_type", "is_nullable", "column_default")
        return select(
            c.c.column_name.label("COLUMN_NAME"), func.upper(c.c.data_type).label("DATA_TYPE_NAME"),
            case((c.c.is_nullable, "TRUE"), else_="FALSE").label("IS_NULLABLE"),
            c.c.column_default.label("DEFAULT_VALUE"),
        ).where(c.c.database_name == func.current_database(),
                c.c.schema_name == self._schema_filter(schema),
                c.c.table_name == name).order_by(c.c.column_index)

    def insert_from_reader(self, conn: Any, name: str, schema: str | None, view: str,
                           reader: pa.RecordBatchReader) -> int:
        """Scan ``reader`` registered as ``view``: one ``INSERT … SELECT``, in the order
        read; the count is the one DuckDB's ``INSERT`` returns."""
        sql, params = self.compile(self.insert_select(name, schema, view, None,
                                                      reader.schema.names))
        conn.register(view, reader)
        try:
            row = conn.execute(sql, params).fetchone()
        finally:
            with contextlib.suppress(duckdb.Error):
                conn.unregister(view)
        return int(row[0]) if row else 0

    def load_arrow(self, conn: Any, name: str, schema: str | None, data: pa.Table) -> None:
        """Insert by scanning the registered Arrow table: one statement per batch."""
        view = f"__fedsage_load_{uuid.uuid4().hex[:12]}"
        sql, params = self.compile(self.insert_select(name, schema, view, None,
                                                      data.column_names))
        conn.register(view, data)
        try:
            with self.translate_errors(sql, f"loading rows into {name!r}"):
                conn.execute(sql, params)
        finally:
            with contextlib.suppress(duckdb.Error):
                conn.unregister(view)
