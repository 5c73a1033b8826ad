"""PostgreSQL through psycopg 3: ``COPY ... TO STDOUT`` for CSV and for Arrow.

CSV channel files are written straight from the server's ``COPY`` output.  Arrow
batches (and so Parquet channels) come from the ADBC PostgreSQL driver when it is
installed (binary ``COPY`` decoded in C++, see :mod:`._pg_adbc`).  Without it they are
parsed from a ``COPY ... (FORMAT csv, FORCE_QUOTE *)`` stream by ``pyarrow.csv``.  Both
give the schema taken from the result's type OIDs.  In the CSV stream NULL is an
unquoted empty field, an empty string a quoted one, so both survive.

Caller SQL is one read-only query because the server says so, not because a lexer
thinks so.  Before a caller's query is read, the server declares a cursor for it
(``DECLARE c CURSOR FOR <query>``, psycopg's server-side cursor, sent with the extended
protocol): a second statement is refused ("cannot insert multiple commands into a
prepared statement"), and what follows ``FOR`` must be exactly one complete SELECT
(``WITH``, ``VALUES`` and ``TABLE`` included; ``SELECT INTO``, data-modifying ``WITH``
and anything else are refused), in a read-only transaction (``FOR UPDATE`` is refused).
The cursor also gives the result's columns without running the query.  A query the
server parsed as one complete SELECT is lexically closed (no open string, comment or
parenthesis, a trailing ``--`` comment aside, which the newline after it ends), so in
``COPY (\n<query>\n) TO STDOUT`` the closing parenthesis can only be fedsage's: the
``COPY`` and ADBC paths keep their speed and use exactly the text the server checked
(parameters bound into it first, by psycopg's quoting, as ``COPY`` needs).

Neither SQLAlchemy nor pyarrow is imported here at module level: a CSV export (``COPY``
straight to the file) needs neither, and SQLAlchemy is made only for the statements the
fedml-aws methods build.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ...errors import DataError
from . import _pg_parallel
from ._pg_adbc import AdbcSession, adbc_available, adbc_query, conninfo, iter_adbc
from .base import Progress, _shorten, rebatch
from .sqlalchemy_url import SQLAlchemyDialect

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine.interfaces import Dialect as SADialect

__all__ = ["PostgreSQLDialect"]

_NUMERIC = 1700
_BLOCK_BYTES = 4 << 20
# Rows per CSV chunk sent to COPY ... FROM STDIN.
_COPY_ROWS = 65_536
# Names of the server-side cursors fedsage declares for caller queries.
_CHECK_CURSOR = "fedsage_check"
_QUERY_CURSOR = "fedsage_query"


class _CopyStream(io.RawIOBase):
    """A readable file over the chunks of a psycopg ``Copy`` object."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # PostgreSQL sends one CopyData message per row: fill the whole buffer, or
        # pyarrow would allocate a full block for every few hundred bytes.
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk).cast("B")
            size = min(len(view) - filled, len(self._pending))
            view[filled:filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


@functools.cache
def _oid_types() -> dict[int, pa.DataType]:
    """PostgreSQL type OIDs -> Arrow types; anything else is read as its text form."""
    import pyarrow as pa

    return {
        16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
        700: pa.float32(), 701: pa.float64(), 25: pa.string(), 1043: pa.string(),
        1042: pa.string(), 19: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"),
        1184: pa.timestamp("us", tz="UTC"),
    }


def _arrow_type(column: Any) -> pa.DataType:
    import pyarrow as pa

    if column.type_code == _NUMERIC:
        precision, scale = column.precision, column.scale
        if precision is not None and scale is not None and precision <= 38:
            return pa.decimal128(precision, scale)
        return pa.float64()
    return _oid_types().get(column.type_code, pa.string())


class PostgreSQLDialect(SQLAlchemyDialect):
    """PostgreSQL (psycopg 3)."""

    has_copy_csv = True
    quote_char = '"'
    #: Read Arrow batches through ADBC when ``adbc-driver-postgresql`` is installed.
    use_adbc = True

    def __init__(self, sa_dialect: SADialect | None = None) -> None:
        """``sa_dialect``: the engine's, when SQLAlchemy connected; else made on first use."""
        import psycopg

        SQLAlchemyDialect.__init__(self, sa_dialect, (psycopg.Error,), name="postgresql")

    def _make_sa_dialect(self) -> SADialect:
        # What create_engine("postgresql+psycopg://...") makes (before it connects).
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        return PGDialect_psycopg(dbapi=PGDialect_psycopg.import_dbapi())

    def use_schema(self, conn: Any, schema: str) -> None:
        """``SET search_path``: unqualified names (e.g. in ``create_table``) go to ``schema``."""
        cursor = self._driver(conn).cursor()
        sql = f"SET search_path TO {self.quote(schema)}"
        with self.translate_errors(sql, "setting the default schema"):
            cursor.execute(sql)
            conn.commit()

    def set_read_only(self, cursor: Any) -> Callable[[], None] | None:
        """``SET TRANSACTION READ ONLY``: the server refuses writes, even in CTEs."""
        cursor.execute("SET TRANSACTION READ ONLY")
        return None

    def run_statement(self, cursor: Any, sql: str, params: Any = None) -> None:
        """Run one statement with the extended protocol: the server refuses a second one.

        Without parameters psycopg would use the simple protocol, which runs every
        statement of the text; ``binary=True`` makes it send the text with
        ``PQsendQueryParams`` (no result is read, so the format does not matter).
        """
        cursor.execute(sql, params, binary=True)

    def fetch_query(self, conn: Any, sql: str, params: Any) -> tuple[list[Any], list[str]]:
        """Read a caller query through a server-side cursor the server declared for it."""
        cursor = self._driver(conn).cursor(name=_QUERY_CURSOR)
        try:
            with self.translate_errors(sql, "running the query"):
                cursor.execute(sql, params)  # DECLARE ... CURSOR FOR <sql>: one SELECT
                headers = [c.name for c in cursor.description or ()]
                return cursor.fetchall(), headers
        finally:
            with self.translate_errors(sql, "closing the query's cursor"):
                cursor.close()

    def _table_comment(self, t: Any) -> Any:
        from sqlalchemy import func

        return func.obj_description(self._regclass(t), "pg_class")

    def _column_comment(self, c: Any) -> Any:
        from sqlalchemy import func

        return func.col_description(self._regclass(c), c.c.ordinal_position)

    @staticmethod
    def _regclass(t: Any) -> Any:
        from sqlalchemy import func, literal

        return func.to_regclass(func.concat(func.quote_ident(t.c.table_schema), literal("."),
                                            func.quote_ident(t.c.table_name)))

    @staticmethod
    def _driver(conn: Any) -> Any:
        return getattr(conn, "driver_connection", conn)

    def _checked(self, conn: Any, sql: str, params: Any) -> tuple[str, list[Any]]:
        """Have the server check a caller query; return the checked text and its columns.

        Parameters are bound into the text first (psycopg's client-side quoting, what
        ``COPY`` would do), so the text checked is the text later wrapped in ``COPY``.
        The caller opened the read-only transaction.

        Raises
        ------
        DataError
            If the server does not take the text as exactly one complete SELECT.
        """
        text = sql
        if params is not None:
            from psycopg import ClientCursor

            quoting = ClientCursor(conn)
            try:
                with self.translate_errors(sql, "binding the parameters"):
                    text = quoting.mogrify(sql, params)
            finally:
                quoting.close()
        cursor = conn.cursor(name=_CHECK_CURSOR)
        try:
            with self.translate_errors(sql, "checking that the query is one SELECT"):
                cursor.execute(text)  # DECLARE ... CURSOR FOR <text>: extended protocol
                description = list(cursor.description or ())
        finally:
            with self.translate_errors(sql, "checking that the query is one SELECT"):
                cursor.close()
        return text, description

    def _describe(self, cursor: Any, sql: str, params: Any) -> tuple[str, pa.Schema, list[int]]:
        """Start a read-only UTC transaction, check the query; return text, schema, OIDs."""
        import pyarrow as pa

        with self.translate_errors(sql, "starting a read-only transaction"):
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SET LOCAL TimeZone = 'UTC'")
        text, description = self._checked(cursor.connection, sql, params)
        names = [c.name for c in description]
        schema = pa.schema(list(zip(names, [_arrow_type(c) for c in description], strict=True)))
        return text, schema, [c.type_code for c in description]

    def iter_arrow(self, conn: Any, sql: str, params: Any,
                   batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Yield typed Arrow batches: through ADBC when installed, else a CSV ``COPY``."""
        conn = self._driver(conn)
        cursor = conn.cursor()
        try:
            text, schema, oids = self._describe(cursor, sql, params)
            if self.use_adbc and adbc_available():
                yield from self._iter_adbc(conn, sql, text, schema, oids, batch_rows)
            else:
                yield from self._iter_copy_csv(cursor, sql, text, schema, batch_rows)
        finally:
            cursor.close()

    def iter_table_arrow(self, conn: Any, name: str, schema: str | None,
                         batch_rows: int) -> Iterator[pa.RecordBatch]:
        """All rows of a table: page ranges read in parallel (see :mod:`._pg_parallel`)."""
        sql, params = self.select_all(name, schema)
        if not (self.use_adbc and adbc_available()):
            yield from self.iter_arrow(conn, sql, params, batch_rows)
            return
        conn = self._driver(conn)
        info = conninfo(conn)
        with _pg_parallel.scan_plan(conn, info, self.qualified(name, schema),
                                    _pg_parallel.worker_count()) as plan:
            if plan is None:
                yield from self.iter_arrow(conn, sql, params, batch_rows)
                return
            cursor = conn.cursor()
            try:
                _text, arrow_schema, oids = self._describe(cursor, sql, params)
            finally:
                cursor.close()
            setup = plan.setup_statements()

            def read(session: AdbcSession, pages: tuple[int, int | None]) -> list[Any]:
                return session.read(adbc_query(plan.range_query(*pages), oids), arrow_schema)

            with self._adbc_errors(sql, "reading the table"):
                sessions = _pg_parallel.open_sessions(lambda: AdbcSession(info, setup),
                                                      plan.workers)
            try:
                with self._adbc_errors(sql, "reading the table"):
                    ranges = _pg_parallel.ordered_map(read, plan.ranges, sessions)
                    yield from rebatch((b for batches in ranges for b in batches), batch_rows,
                                       arrow_schema)
            finally:
                for session in sessions:
                    session.close()

    @contextlib.contextmanager
    def _adbc_errors(self, sql: str, action: str) -> Iterator[None]:
        """ADBC and Arrow errors as :class:`DataError`, with the first line of the reason."""
        import pyarrow as pa
        from adbc_driver_manager import Error as AdbcError

        try:
            yield
        except (AdbcError, pa.ArrowException, OSError) as exc:
            # The reader raises server errors met mid-stream as OSError.  Only the first
            # line: the rest repeats the query, with its values bound on the client.
            detail = " ".join(str(exc).split("\n", 1)[0].split())
            raise DataError(f"{self.name}: {action} failed: {detail}\n"
                            f"  statement: {_shorten(sql)}") from exc

    def _iter_adbc(self, conn: Any, sql: str, text: str, schema: pa.Schema,
                   oids: list[int], batch_rows: int) -> Iterator[pa.RecordBatch]:
        with self._adbc_errors(sql, "streaming the result"):
            yield from iter_adbc(conn, text, schema, oids, batch_rows)

    def _iter_copy_csv(self, cursor: Any, sql: str, text: str, schema: pa.Schema,
                       batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Parse a ``COPY (FORMAT csv, FORCE_QUOTE *)`` stream with ``pyarrow.csv``.

        ``text`` is the query as :meth:`_checked` returned it (parameters bound).
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        types = list(schema.types)
        # Columns are addressed by position: names may repeat in a query.
        keys = [f"c{i}" for i in range(len(types))]
        copy_sql = f"COPY (\n{text}\n) TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
        with self.translate_errors(sql, "streaming the result"), cursor.copy(copy_sql) as copy:
            try:
                reader = pacsv.open_csv(
                    _CopyStream(iter(copy)),
                    read_options=pacsv.ReadOptions(column_names=keys,
                                                   block_size=_BLOCK_BYTES),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                                     ignore_empty_lines=False),
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict(zip(keys, types, strict=True)),
                        strings_can_be_null=True, quoted_strings_can_be_null=False,
                        null_values=[""], true_values=["t"], false_values=["f"]),
                )
            except pa.ArrowInvalid as exc:
                if "Empty CSV" not in str(exc):
                    raise
                reader = iter(())  # no rows at all
            yield from rebatch(
                (pa.RecordBatch.from_arrays(block.columns, schema=schema) for block in reader),
                batch_rows, schema)

    def copy_csv(self, conn: Any, sql: str, params: Any, handle: IO[bytes],
                 progress: Progress | None) -> int:
        """``COPY (query) TO STDOUT (FORMAT csv)`` written chunk by chunk to ``handle``.

        The query is checked by the server first (:meth:`_checked`).
        """
        driver = self._driver(conn)
        cursor = driver.cursor()
        try:
            lines = 0
            with self.translate_errors(sql, "starting a read-only transaction"):
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute("SET LOCAL TimeZone = 'UTC'")
            text, _description = self._checked(driver, sql, params)
            with self.translate_errors(sql, "exporting the result"), \
                    cursor.copy(f"COPY (\n{text}\n) TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    handle.write(chunk)
                    if progress is not None:
                        lines += bytes(chunk).count(b"\n")
                        progress(lines)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def copy_table_csv(self, conn: Any, name: str, schema: str | None, handle: IO[bytes],
                       progress: Progress | None) -> int:
        """All rows of a table as CSV: page ranges copied in parallel, written in order."""
        sql, params = self.select_all(name, schema)
        driver = self._driver(conn)
        info = conninfo(driver)
        with _pg_parallel.scan_plan(driver, info, self.qualified(name, schema),
                                    _pg_parallel.worker_count(),
                                    _pg_parallel.CSV_CHUNK_PAGES) as plan:
            if plan is None:
                return self.copy_csv(conn, sql, params, handle, progress)
            setup = plan.setup_statements()

            def copy(session: _pg_parallel.CopySession,
                     pages: tuple[int, int | None]) -> tuple[bytearray, int]:
                return session.copy_out(plan.range_query(*pages))

            sessions = _pg_parallel.open_sessions(
                lambda: _pg_parallel.CopySession(info, setup), plan.workers)
            try:
                rows = 0
                for data, count in _pg_parallel.ordered_map(copy, plan.ranges, sessions):
                    handle.write(data)
                    rows += count
                    if progress is not None:
                        progress(rows)
                return rows
            finally:
                for session in sessions:
                    session.close()

    # -- writing (fedsage.data.writer) --------------------------------------------

    temp_schema = "pg_temp"
    max_identifier_bytes = 63  # NAMEDATALEN - 1; longer names are cut silently

    def writer_session(self, conn: Any,
                       reopen: Callable[[], tuple[Any, Callable[[], None]]]
                       ) -> tuple[Any, Callable[[], None]]:
        """A new connection, named ``fedsage writer`` in ``pg_stat_activity``."""
        session, close = reopen()
        try:
            with self.translate_errors("SET application_name", "naming the writer's session"):
                cursor = self._driver(session).cursor()
                cursor.execute("SET application_name = 'fedsage writer'")
                cursor.close()
                session.commit()
        except BaseException:
            close()
            raise
        return session, close

    def load_arrow(self, conn: Any, name: str, schema: str | None, data: pa.Table) -> None:
        """``COPY … FROM STDIN (FORMAT csv)`` fed by Arrow's CSV writer.

        In PostgreSQL's CSV an unquoted empty field is NULL and Arrow quotes every
        string, so NULL and ``''`` stay apart; floats are written in their shortest
        exact form (``nan``, ``inf`` included), which ``float8in`` reads back to the
        same bits.  Binary columns (Arrow would write raw bytes) go through
        ``executemany``.
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
               or pa.types.is_fixed_size_binary(f.type) for f in data.schema):
            self.insert_arrow(conn, name, schema, data)
            return
        columns = ", ".join(self.quote(c) for c in data.column_names)
        sql = f"COPY {self.qualified(name, schema)} ({columns}) FROM STDIN (FORMAT csv)"
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        cursor = self._driver(conn).cursor()
        try:
            with self.translate_errors(sql, f"loading rows into {name!r}"), \
                    cursor.copy(sql) as copy:
                for batch in data.to_batches(max_chunksize=_COPY_ROWS):
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(batch, sink, write_options=options)
                    copy.write(memoryview(sink.getvalue()))
        finally:
            cursor.close()
