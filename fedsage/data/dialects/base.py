"""What every dialect provides: compiled SQL, catalog queries, reading and bulk writing.

A :class:`Dialect` builds SQLAlchemy Core statements and compiles them with the
vendor's SQLAlchemy dialect, so identifiers are quoted by the vendor's preparer and
values always travel as bound parameters.  SQLAlchemy (and pyarrow) are imported only
where they are used: streaming a query or a whole table (:meth:`Dialect.select_all`)
needs neither, so an export does not pay for importing them.  Subclasses override only
what differs: catalog views, the fast paths for Arrow batches, CSV (PostgreSQL's
``COPY``) and Parquet (DuckDB's own writer), and the guards.
Nothing outside ``fedsage.data.dialects`` builds SQL text.

Caller SQL (a query, or fedml-aws's clause arguments) is one statement, enforced by the
engine where it can: :meth:`Dialect.run_statement` and :meth:`Dialect.fetch_query` send
exactly one statement (PostgreSQL's extended protocol, DuckDB's parsed statement,
SQLite's ``execute``), and every read of caller SQL runs read-only
(:meth:`Dialect.set_read_only`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from ...errors import ConfigurationError, DataError

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa
    from sqlalchemy.engine.interfaces import Dialect as SADialect
    from sqlalchemy.sql import ClauseElement, quoted_name
    from sqlalchemy.sql.expression import ColumnClause, TableClause

__all__ = ["COLUMN_HEADERS", "TABLE_HEADERS", "Dialect", "Progress", "rebatch"]

logger = logging.getLogger(__name__)

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Progress = Callable[[int], None]
"""A progress callback: called with the number of rows written so far."""

#: Headers of ``get_view_metadata`` / ``get_table_metadata`` on every engine: fedml-aws's
#: columns of HANA's ``VIEW_COLUMNS`` / ``TABLE_COLUMNS``, in fedml-aws's order.
COLUMN_HEADERS = ("POSITION", "COLUMN_NAME", "DATA_TYPE_NAME", "LENGTH", "IS_NULLABLE",
                  "SCALE", "DEFAULT_VALUE", "INDEX_TYPE", "GENERATION_TYPE", "COMMENTS")
#: Headers of ``get_user_tables`` on every engine: fedml-aws's columns of HANA's ``TABLES``.
TABLE_HEADERS = ("TABLE_NAME", "SCHEMA_NAME", "TABLE_TYPE", "COMMENTS", "CREATE_TIME")
#: The column fedml-aws's ``create_table`` adds to every table.
INSERTED_AT_DDL = "INSERTED_AT TIMESTAMP NOT NULL"


class Dialect:
    """SQL and driver behaviour of one database engine.

    Parameters
    ----------
    sa_dialect : sqlalchemy.engine.interfaces.Dialect or None, default=None
        The SQLAlchemy dialect that compiles statements for this engine; ``None``
        makes it on first use with :meth:`_make_sa_dialect`.
    """

    #: A short engine name used in messages.
    name = "sql"
    #: Exception classes of the DB-API driver, translated to :class:`DataError`.
    driver_errors: tuple[type[BaseException], ...] = ()
    #: Whether :meth:`copy_csv` exports CSV on the server side.
    has_copy_csv = False
    #: Whether :meth:`write_parquet` writes Parquet with the engine's own writer.
    has_native_parquet = False
    #: Whether the engine runs in this process and :meth:`bounded_memory` caps its memory.
    caps_memory = False
    #: The identifier quote when it is ``"`` doubled inside names (as the SQLAlchemy
    #: preparer of PostgreSQL, DuckDB, SQLite and HANA quotes); ``None``: ask the preparer.
    quote_char: str | None = None

    def __init__(self, sa_dialect: SADialect | None = None) -> None:
        self._sa_dialect = sa_dialect

    @property
    def sa_dialect(self) -> SADialect:
        """The SQLAlchemy dialect, made (and SQLAlchemy imported) on first use."""
        if self._sa_dialect is None:
            self._sa_dialect = self._make_sa_dialect()
        return self._sa_dialect

    def _make_sa_dialect(self) -> SADialect:
        raise NotImplementedError(f"{type(self).__name__} needs a SQLAlchemy dialect")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- compiling ---------------------------------------------------------------

    def compile(self, stmt: ClauseElement) -> tuple[str, Any]:
        """Compile ``stmt`` to the SQL text and the parameters the driver expects.

        Parameters
        ----------
        stmt : sqlalchemy.sql.ClauseElement
            A Core statement.

        Returns
        -------
        sql : str
        params : list or dict
            A list for positional paramstyles (``qmark``, ``numeric``), else a dict.
        """
        compiled = stmt.compile(dialect=self.sa_dialect)
        return str(compiled), self._bind(compiled, None)

    def _bind(self, compiled: Any, values: dict[str, Any] | None) -> Any:
        from sqlalchemy.sql.compiler import DDLCompiler

        if isinstance(compiled, DDLCompiler):
            # No parameters, but pass an empty set: for format/pyformat drivers the
            # compiler doubled every % in names, which the driver undoes only then.
            return [] if self.sa_dialect.positional else {}
        if self.sa_dialect.positional:
            params = compiled.construct_params(values, escape_names=False)
            return [params[name] for name in compiled.positiontup or ()]
        return dict(compiled.construct_params(values))

    def quote(self, name: str) -> str:
        """Return ``name`` as a quoted identifier (exact case, embedded quotes doubled).

        Meant for SQL text run *without* parameters, so unlike the preparer's own
        ``quote_identifier`` it does not double ``%`` for ``pyformat`` drivers.
        """
        if self.quote_char is not None:
            q = self.quote_char
            return q + name.replace(q, q + q) + q
        prep = self.sa_dialect.identifier_preparer
        return prep.initial_quote + name.replace(prep.final_quote, prep.escape_to_quote) + (
            prep.final_quote)

    def relation(self, name: str, schema: str | None, *columns: str) -> TableClause:
        """Return a table clause whose name (and schema) are quoted verbatim."""
        from sqlalchemy.sql import quoted_name
        from sqlalchemy.sql.expression import column, table

        cols: list[ColumnClause[Any]] = [column(c) for c in columns]
        qschema = quoted_name(schema, quote=True) if schema is not None else None
        return table(quoted_name(name, quote=True), *cols, schema=qschema)

    def column_name(self, name: str) -> quoted_name:
        """A column name as fedml-aws wrote it: unquoted when that is legal SQL.

        Unquoted names fold the way the engine folds the names of an unquoted
        ``CREATE TABLE`` (HANA: upper case, PostgreSQL: lower case), so a DataFrame
        column ``id`` fills a column created as ``ID INTEGER``.  Any other name
        (spaces, quotes, reserved words, non-ASCII) is quoted verbatim.
        """
        from sqlalchemy.sql import quoted_name

        preparer = self.sa_dialect.identifier_preparer
        plain = _PLAIN.fullmatch(name) is not None
        return quoted_name(name, quote=not plain or name.lower() in preparer.reserved_words)

    def qualified(self, name: str, schema: str | None) -> str:
        """Return ``"schema"."name"`` (or ``"name"``), for appending caller SQL fragments."""
        prefix = f"{self.quote(schema)}." if schema is not None else ""
        return prefix + self.quote(name)

    # -- statements every engine shares ------------------------------------------

    def select_all(self, name: str, schema: str | None) -> tuple[str, Any]:
        """``SELECT *`` of a whole table or view as SQL text and parameters.

        With a known :attr:`quote_char` the text is written here, without importing
        SQLAlchemy, and has no parameters; otherwise :meth:`head` is compiled.
        """
        if self.quote_char is None:
            return self.compile(self.head(name, schema, None))
        return f"SELECT * FROM {self.qualified(name, schema)}", None

    def count(self, name: str, schema: str | None) -> ClauseElement:
        """``SELECT COUNT(*)`` of a table or view."""
        from sqlalchemy import func, select

        return select(func.count().label("COUNT")).select_from(self.relation(name, schema))

    def head(self, name: str, schema: str | None, limit: int | None) -> ClauseElement:
        """``SELECT *`` of a table or view, the first ``limit`` rows (all when ``None``)."""
        from sqlalchemy import literal_column, select

        stmt: Any = select(literal_column("*")).select_from(self.relation(name, schema))
        return stmt if limit is None else stmt.limit(limit)

    def insert(self, name: str, schema: str | None, columns: Sequence[str]) -> ClauseElement:
        """``INSERT INTO name (columns…) VALUES (?, …)`` for ``executemany``."""
        from sqlalchemy import Column, MetaData, Table, insert
        from sqlalchemy.sql import quoted_name
        from sqlalchemy.types import NullType

        target = Table(quoted_name(name, quote=True), MetaData(),
                       *[Column(self.column_name(c), NullType()) for c in columns],
                       schema=quoted_name(schema, quote=True) if schema else None)
        return insert(target)

    def create_table(self, name: str, schema: str | None,
                     columns: Sequence[tuple[str, Any]]) -> ClauseElement:
        """``CREATE TABLE "schema"."name" ("col" type, …)``; types are SQLAlchemy types."""
        from sqlalchemy import Column, MetaData, Table
        from sqlalchemy.schema import CreateTable
        from sqlalchemy.sql import quoted_name

        return CreateTable(Table(quoted_name(name, quote=True), MetaData(),
                                 *[Column(quoted_name(c, quote=True), t) for c, t in columns],
                                 schema=quoted_name(schema, quote=True) if schema else None))

    def drop_table(self, name: str, schema: str | None) -> ClauseElement:
        """``DROP TABLE "schema"."name"``."""
        from sqlalchemy import MetaData, Table
        from sqlalchemy.schema import DropTable
        from sqlalchemy.sql import quoted_name

        return DropTable(Table(quoted_name(name, quote=True), MetaData(),
                               schema=quoted_name(schema, quote=True) if schema else None))

    # -- statements around caller SQL (fedml-aws's clause arguments) --------------
    #
    # fedml-aws's ``create_table``, ``delete_from_table``, ``update_table`` and
    # ``alter_table`` take SQL fragments written by the caller; they are placed after
    # the quoted table name as written.  :meth:`run_statement` then makes sure the
    # result is one statement.

    def create_table_with_inserted_at(self, query: str) -> str:
        """``CREATE TABLE name (cols…)`` plus fedml-aws's ``INSERTED_AT`` column."""
        text = query.strip().rstrip(";").rstrip()
        return f"{text[:-1].rstrip()}, {INSERTED_AT_DDL})"

    def delete_rows(self, name: str, schema: str | None, where_clause: str | None) -> str:
        """``DELETE FROM "schema"."name" [WHERE <where_clause>]`` (no clause: every row)."""
        where = "" if where_clause is None else f" WHERE {where_clause}"
        return f"DELETE FROM {self.qualified(name, schema)}{where}"

    def update_rows(self, name: str, schema: str | None, set_clause: str,
                    where_clause: str | None) -> str:
        """``UPDATE "schema"."name" SET <set_clause> [WHERE <where_clause>]``."""
        where = "" if where_clause is None else f" WHERE {where_clause}"
        return f"UPDATE {self.qualified(name, schema)} SET {set_clause}{where}"

    def alter_table(self, name: str, schema: str | None, clause: str) -> str:
        """``ALTER TABLE "schema"."name" <clause>``."""
        return f"ALTER TABLE {self.qualified(name, schema)} {clause}"

    def current_schema(self) -> ColumnClause[Any] | Any:
        """An expression for the session's current schema."""
        from sqlalchemy import func

        return func.current_schema()

    # -- catalog (overridden where the engine has no information_schema) ---------

    def _schema_filter(self, schema: str | None) -> Any:
        from sqlalchemy import literal

        return literal(schema) if schema is not None else self.current_schema()

    def views(self, schema: str | None, name_contains: str | None = None) -> ClauseElement:
        """Views of ``schema`` (``VIEW_NAME``, ``VIEW_TYPE``), optionally filtered by name."""
        from sqlalchemy import func, literal, select
        from sqlalchemy.sql.expression import column, table

        v = table("views", column("table_schema"), column("table_name"),
                  schema="information_schema")
        stmt: Any = select(v.c.table_name.label("VIEW_NAME"),
                           literal("VIEW").label("VIEW_TYPE"))
        stmt = stmt.where(v.c.table_schema == self._schema_filter(schema))
        if name_contains is not None:
            stmt = stmt.where(
                func.lower(v.c.table_name).contains(name_contains.lower(), autoescape=True))
        return stmt.order_by(v.c.table_name)

    def tables(self, schema: str | None) -> ClauseElement:
        """Base tables of ``schema``, with :data:`TABLE_HEADERS` (NULL where unknown)."""
        from sqlalchemy import null, select
        from sqlalchemy.sql.expression import column, table

        t = table("tables", column("table_schema"), column("table_name"), column("table_type"),
                  schema="information_schema")
        return select(
            t.c.table_name.label("TABLE_NAME"), t.c.table_schema.label("SCHEMA_NAME"),
            t.c.table_type.label("TABLE_TYPE"), self._table_comment(t).label("COMMENTS"),
            null().label("CREATE_TIME"),
        ).where(t.c.table_schema == self._schema_filter(schema),
                t.c.table_type == "BASE TABLE").order_by(t.c.table_name)

    def _table_comment(self, t: TableClause) -> Any:
        """The comment of an ``information_schema.tables`` row; NULL unless overridden."""
        from sqlalchemy import null

        return null()

    def _column_comment(self, c: TableClause) -> Any:
        """The comment of an ``information_schema.columns`` row; NULL unless overridden."""
        from sqlalchemy import null

        return null()

    def columns(self, name: str, schema: str | None, kind: str) -> ClauseElement:
        """Columns of a table or view (``kind``: ``'table'`` or ``'view'``), :data:`COLUMN_HEADERS`.

        Values follow HANA's: ``IS_NULLABLE`` is ``'TRUE'`` / ``'FALSE'``,
        ``GENERATION_TYPE`` is ``'ALWAYS AS IDENTITY'``, ``'BY DEFAULT AS IDENTITY'``,
        ``'ALWAYS AS <expression>'`` or NULL; ``INDEX_TYPE`` (a HANA column-store
        property) is NULL.
        """
        from sqlalchemy import case, func, literal, null, select
        from sqlalchemy.sql.expression import column, table

        c = table("columns", *[column(n) for n in (
            "table_schema", "table_name", "ordinal_position", "column_name", "data_type",
            "character_maximum_length", "numeric_precision", "numeric_scale", "is_nullable",
            "column_default", "is_identity", "identity_generation", "is_generated",
            "generation_expression")], schema="information_schema")
        generation = case(
            (c.c.is_identity == "YES",
             func.concat(func.upper(c.c.identity_generation), literal(" AS IDENTITY"))),
            (c.c.is_generated == "ALWAYS",
             func.concat(literal("ALWAYS AS "), c.c.generation_expression)),
            else_=null())
        return select(
            c.c.ordinal_position.label("POSITION"), c.c.column_name.label("COLUMN_NAME"),
            func.upper(c.c.data_type).label("DATA_TYPE_NAME"),
            func.coalesce(c.c.character_maximum_length, c.c.numeric_precision).label("LENGTH"),
            case((c.c.is_nullable == "YES", "TRUE"), else_="FALSE").label("IS_NULLABLE"),
            c.c.numeric_scale.label("SCALE"),
            c.c.column_default.label("DEFAULT_VALUE"), null().label("INDEX_TYPE"),
            generation.label("GENERATION_TYPE"), self._column_comment(c).label("COMMENTS"),
        ).where(c.c.table_schema == self._schema_filter(schema),
                c.c.table_name == name).order_by(c.c.ordinal_position)

    # -- executing -----------------------------------------------------------------

    @contextlib.contextmanager
    def translate_errors(self, statement: str, action: str) -> Iterator[None]:
        """Turn driver exceptions into :class:`DataError` naming the statement (never values)."""
        try:
            yield
        except self.driver_errors as exc:
            detail = " ".join(str(exc).split())
            raise DataError(
                f"{self.name}: {action} failed: {detail}\n  statement: {_shorten(statement)}"
            ) from exc

    def use_schema(self, conn: Any, schema: str) -> None:
        """Make ``schema`` the session's default for unqualified names."""
        raise ConfigurationError(
            f"{self.name}: a default schema is not supported here; qualify names instead"
        )

    def end(self, conn: Any, ok: bool) -> None:
        """End the current transaction: commit on success, else roll back."""
        if ok:
            conn.commit()
        else:
            conn.rollback()

    def set_read_only(self, cursor: Any) -> Callable[[], None] | None:
        """Make the current transaction read-only where the engine can; return an undo."""
        return None

    @contextlib.contextmanager
    def bounded_memory(self, conn: Any, limit: int) -> Iterator[bool]:
        """Cap the engine's own in-process memory at ``limit`` bytes while the block runs
        (yields whether it did); engines in another process have nothing to cap."""
        yield False

    def check_query(self, conn: Any, sql: str) -> None:
        """Refuse caller SQL the engine can tell is not one read-only query (cheap, early).

        The generic dialect has nothing beyond fedsage's lexical check; the reads
        themselves (:meth:`fetch_query`, :meth:`iter_arrow`, :meth:`copy_csv`) enforce
        one statement and run read-only where the engine can.
        """

    def run_statement(self, cursor: Any, sql: str, params: Any = None) -> None:
        """Run one statement whose result is not read; the driver refuses a second one.

        The DB-API ``execute`` of SQLite refuses several statements; engines whose
        ``execute`` would run them all override this.
        """
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)

    def fetch_query(self, conn: Any, sql: str, params: Any) -> tuple[list[Any], list[str]]:
        """Run one caller query (in a read-only transaction) and fetch every row.

        Returns
        -------
        rows : list
        headers : list of str
        """
        cursor = conn.cursor()
        try:
            with self.translate_errors(sql, "running the query"):
                self.run_statement(cursor, sql, params)
                headers = [d[0] for d in cursor.description or ()]
                return cursor.fetchall(), headers
        finally:
            cursor.close()

    def iter_arrow(self, conn: Any, sql: str, params: Any,
                   batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Yield the result of ``sql`` as record batches of at most ``batch_rows`` rows.

        The generic path: a read-only DB-API cursor and ``fetchmany``; engines with a
        columnar API override it.
        """
        from .._arrow import rows_to_batch

        cursor = conn.cursor()
        undo = None
        try:
            with self.translate_errors(sql, "running the query"):
                undo = self.set_read_only(cursor)
                self.run_statement(cursor, sql, params)
            if cursor.description is None:
                raise DataError("the query returned no result set; it must be one SELECT")
            names = [d[0] for d in cursor.description]
            schema: pa.Schema | None = None
            while True:
                rows = cursor.fetchmany(batch_rows)
                if not rows:
                    break
                batch = rows_to_batch(rows, names, schema)
                schema = batch.schema if schema is None else schema
                yield batch
            if schema is None:
                yield rows_to_batch([], names, None)
        finally:
            try:
                if undo is not None:
                    undo()
            finally:
                cursor.close()

    def iter_table_arrow(self, conn: Any, name: str, schema: str | None,
                         batch_rows: int) -> Iterator[pa.RecordBatch]:
        """All rows of a table as record batches; engines with a faster way override it."""
        sql, params = self.select_all(name, schema)
        return self.iter_arrow(conn, sql, params, batch_rows)

    def copy_table_csv(self, conn: Any, name: str, schema: str | None, handle: IO[bytes],
                       progress: Progress | None) -> int:
        """All rows of a table as header-less CSV from the server (``has_copy_csv``)."""
        sql, params = self.select_all(name, schema)
        return self.copy_csv(conn, sql, params, handle, progress)

    def copy_csv(self, conn: Any, sql: str, params: Any, handle: IO[bytes],
                 progress: Progress | None) -> int:
        """Write the result as header-less CSV straight from the server (``has_copy_csv``)."""
        raise NotImplementedError(f"{self.name} has no server-side CSV export")

    def write_parquet(self, conn: Any, sql: str, params: Any, path: Path,
                      progress: Progress | None) -> int | None:
        """Write the result to ``path`` with the engine's own Parquet writer
        (``has_native_parquet``), atomically.

        Parameters
        ----------
        conn : DB-API connection
            The session to read on.
        sql : str
            One read-only statement (caller SQL already checked, or :meth:`select_all`).
        params : any
            Its bound parameters.
        path : pathlib.Path
            The file to create (a temporary sibling is renamed into place on success).
        progress : callable or None
            Called with the number of rows written.

        Returns
        -------
        int or None
            Rows written; ``None`` (and nothing written) when the engine's file would
            read back differently from the one :func:`fedsage.data.export.write_batches`
            writes (a column type the engine encodes otherwise): the caller writes it
            from Arrow batches then.

        Raises
        ------
        DataError
            If the query or the writing fails (nothing is left at ``path``).
        """
        raise NotImplementedError(f"{self.name} has no Parquet writer of its own")

    def insert_arrow(self, conn: Any, name: str, schema: str | None, data: pa.Table) -> None:
        """Insert every row of ``data`` into a table: ``executemany`` in chunks.

        Raises
        ------
        DataError
            If the driver refuses the insert.
        """
        compiled = self.insert(name, schema, data.column_names).compile(dialect=self.sa_dialect)
        sql, names = str(compiled), data.column_names
        cursor = conn.cursor()
        try:
            with self.translate_errors(sql, f"inserting into {name!r}"):
                for batch in data.to_batches(max_chunksize=10_000):
                    columns = [col.to_pylist() for col in batch.columns]
                    params = [self._bind(compiled, dict(zip(names, row, strict=True)))
                              for row in zip(*columns, strict=True)]
                    cursor.executemany(sql, params)
        finally:
            cursor.close()


    # -- writing through a staging table (fedsage.data.writer) -------------------
    #
    # The writer loads rows into a staging table on a session of its own and, at
    # commit, creates / replaces / appends to the target in one transaction.  What
    # differs per engine is here: where staging lives, how a session and a
    # transaction are opened, and the bulk path.

    #: How the writer stages rows (each way leaves the target untouched until commit):
    #:
    #: ``"transaction"``
    #:     a table beside the target, created inside the writer's one open transaction
    #:     (transactional DDL): no other session sees it, and a rollback, a killed
    #:     process or a lost connection removes it.  At commit it is renamed to the
    #:     target (``fail``/``replace``: the rows are not copied again) or inserted from.
    #: ``"temporary"``
    #:     a ``TEMPORARY`` table in :attr:`temp_schema`, which dies with the session,
    #:     loaded in short transactions; the target is created from it at commit.
    #: ``"table"``
    #:     a named table beside the target, committed as it is loaded, dropped on abort
    #:     (a killed process leaves it behind).
    #: ``"spool"``
    #:     no table: an Arrow IPC stream in an unnamed temporary file of the writer's
    #:     process (gone with it, however it ends), read back at commit by one
    #:     ``INSERT … SELECT`` from it (:meth:`insert_from_reader`) in the publishing
    #:     transaction.  For an engine in the caller's process (DuckDB), whose staged
    #:     rows would otherwise sit in its memory until the commit.
    staging = "table"
    #: Schema of session-private ``TEMPORARY`` tables (``staging = "temporary"``).
    temp_schema: str | None = None
    #: Longest identifier (UTF-8 bytes) the engine keeps as given (PostgreSQL cuts
    #: longer ones silently, so the writer refuses them).
    max_identifier_bytes = 127

    def check_identifier(self, name: Any, parameter: str) -> str:
        """Return ``name`` if it can name a table, schema or column on this engine.

        Names are quoted (exact case), so any text is legal except what the engine
        cannot keep: empty names, control characters (NUL included), leading or
        trailing blanks (a typo, never meant) and names longer than
        :attr:`max_identifier_bytes`.  A dot is refused too: ``"sales.scores"`` would
        become one table of that name, not ``scores`` in schema ``sales``.

        Raises
        ------
        DataError
            Naming the parameter, the rule and the fix.
        """
        if not isinstance(name, str) or not name:
            raise DataError(f"the {parameter} parameter must be a non-empty string; "
                            f"got {name!r}")
        problem = None
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            problem = "contains control characters"
        elif name != name.strip():
            problem = "starts or ends with blanks"
        elif len(name.encode("utf-8")) > self.max_identifier_bytes:
            problem = (f"is {len(name.encode('utf-8'))} bytes long; {self.name} keeps at "
                       f"most {self.max_identifier_bytes}")
        elif "." in name and parameter != "column":
            problem = ("contains a dot; pass the schema separately "
                       f"(schema={name.split('.', 1)[0]!r})")
        if problem is not None:
            raise DataError(f"the {parameter} parameter {name!r} is not a legal identifier: "
                            f"it {problem}")
        return name

    def arrow_sql_type(self, dtype: pa.DataType, column: str) -> Any:
        """The SQLAlchemy type a column of Arrow type ``dtype`` is created with.

        Raises
        ------
        DataError
            For Arrow types without a SQL column type (lists, structs, ...).
        """
        import pyarrow as pa
        import sqlalchemy as sa

        t = pa.types
        if t.is_dictionary(dtype):
            return self.arrow_sql_type(dtype.value_type, column)
        simple: list[tuple[Callable[[Any], bool], Any]] = [
            (t.is_boolean, sa.Boolean()), (t.is_int8, sa.SmallInteger()),
            (t.is_int16, sa.SmallInteger()), (t.is_uint8, sa.SmallInteger()),
            (t.is_int32, sa.Integer()), (t.is_uint16, sa.Integer()),
            (t.is_int64, sa.BigInteger()), (t.is_uint32, sa.BigInteger()),
            (t.is_uint64, sa.Numeric(20, 0)), (t.is_float16, sa.REAL()),
            (t.is_float32, sa.REAL()), (t.is_float64, sa.Double()),
            (t.is_date, sa.Date()), (t.is_time, sa.Time()),
            (lambda d: t.is_string(d) or t.is_large_string(d) or t.is_null(d), sa.Text()),
            (lambda d: t.is_binary(d) or t.is_large_binary(d) or t.is_fixed_size_binary(d),
             sa.LargeBinary()),
        ]
        for test, sql_type in simple:
            if test(dtype):
                return sql_type
        if t.is_decimal(dtype):
            return sa.Numeric(dtype.precision, dtype.scale)
        if t.is_timestamp(dtype):
            return sa.DateTime(timezone=dtype.tz is not None)
        raise DataError(
            f"column {column!r} has the Arrow type {dtype}, which has no SQL column type "
            "here; cast it to a number, string or timestamp first")

    def writer_session(self, conn: Any,
                       reopen: Callable[[], tuple[Any, Callable[[], None]]]
                       ) -> tuple[Any, Callable[[], None]]:
        """A DB-API session for one writer and how to close it.

        The writer gets a session of its own (``reopen``: a new connection with the
        same configuration), so its temporary table and its transactions never mix
        with reads running on the caller's connection.
        """
        return reopen()

    def begin_write(self, conn: Any) -> None:
        """Start the transaction that publishes the target (drivers that begin implicitly:
        nothing to do)."""

    def end_write(self, conn: Any, ok: bool) -> None:
        """Commit (``ok``) or roll back the writer's current transaction."""
        self.end(conn, ok)

    def staging_table(self, name: str, schema: str | None,
                      columns: Sequence[tuple[str, Any]]) -> ClauseElement:
        """``CREATE [TEMPORARY] TABLE`` for staging (see :attr:`staging`)."""
        from sqlalchemy import Column, MetaData, Table
        from sqlalchemy.schema import CreateTable
        from sqlalchemy.sql import quoted_name

        temporary = self.staging == "temporary"
        where = self.temp_schema if temporary else schema
        prefixes = ["TEMPORARY"] if temporary else []
        return CreateTable(Table(quoted_name(name, quote=True), MetaData(),
                                 *[Column(quoted_name(c, quote=True), t) for c, t in columns],
                                 schema=quoted_name(where, quote=True) if where else None,
                                 prefixes=prefixes))

    def staging_schema(self, schema: str | None) -> str | None:
        """The schema the staging table of a target in ``schema`` lives in."""
        return self.temp_schema if self.staging == "temporary" else schema

    def rename_table(self, name: str, schema: str | None, new_name: str) -> str:
        """``ALTER TABLE "schema"."name" RENAME TO "new_name"`` (same schema)."""
        return f"ALTER TABLE {self.qualified(name, schema)} RENAME TO {self.quote(new_name)}"

    def create_target(self, name: str, schema: str | None,
                      columns: Sequence[tuple[str, Any]]) -> ClauseElement:
        """``CREATE TABLE "schema"."name" ("col" type, …)``, names exactly as given."""
        from sqlalchemy import Column, MetaData, Table
        from sqlalchemy.schema import CreateTable
        from sqlalchemy.sql import quoted_name

        return CreateTable(Table(quoted_name(name, quote=True), MetaData(),
                                 *[Column(quoted_name(c, quote=True), t) for c, t in columns],
                                 schema=quoted_name(schema, quote=True) if schema else None))

    def exact_relation(self, name: str, schema: str | None, *columns: str) -> TableClause:
        """As :meth:`relation`, with every column name quoted verbatim too (never folded:
        the writer creates and fills columns under their exact names)."""
        from sqlalchemy.sql import quoted_name
        from sqlalchemy.sql.expression import column, table

        qschema = quoted_name(schema, quote=True) if schema is not None else None
        return table(quoted_name(name, quote=True),
                     *[column(quoted_name(c, quote=True)) for c in columns], schema=qschema)

    def insert_select(self, name: str, schema: str | None, source: str,
                      source_schema: str | None, columns: Sequence[str]) -> ClauseElement:
        """``INSERT INTO target (cols…) SELECT cols… FROM source``."""
        from sqlalchemy import insert, select

        target = self.exact_relation(name, schema, *columns)
        src = self.exact_relation(source, source_schema, *columns)
        return insert(target).from_select(list(target.c), select(*src.c))

    def target_columns(self, name: str, schema: str | None) -> ClauseElement:
        """Columns of a table (``COLUMN_NAME``, ``DATA_TYPE_NAME``, ``IS_NULLABLE``,
        ``DEFAULT_VALUE`` among :data:`COLUMN_HEADERS`); no row: no such table."""
        return self.columns(name, schema, "table")

    def insert_from_reader(self, conn: Any, name: str, schema: str | None, view: str,
                           reader: pa.RecordBatchReader) -> int:
        """``INSERT INTO`` the table every row of ``reader`` (``staging = "spool"``);
        return the rows the engine inserted.  ``view`` is a free name to scan it under."""
        raise NotImplementedError(f"{self.name} does not stage in a spool file")

    def load_arrow(self, conn: Any, name: str, schema: str | None, data: pa.Table) -> None:
        """Bulk-load ``data`` into the staging table: ``executemany`` in chunks of rows.

        Positional drivers (``qmark``: SQLite, HANA) get plain tuples, without building
        a parameter dictionary per row; others (``pyformat``) get one dictionary per row.
        """
        from sqlalchemy import insert

        stmt = insert(self.exact_relation(name, schema, *data.column_names))
        sql = str(stmt.compile(dialect=self.sa_dialect))
        cursor = conn.cursor()
        try:
            with self.translate_errors(sql, f"loading rows into {name!r}"):
                for batch in self.python_values(data).to_batches(max_chunksize=10_000):
                    columns = [col.to_pylist() for col in batch.columns]
                    rows: list[Any] = list(zip(*columns, strict=True))
                    if not self.sa_dialect.positional:
                        keys = list(stmt.compile(dialect=self.sa_dialect).params)
                        rows = [dict(zip(keys, row, strict=True)) for row in rows]
                    cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def connection_lost(self, conn: Any) -> bool:
        """Whether the driver knows the session is gone (the server ended it, the network
        dropped); ``False`` when it cannot tell."""
        return False

    def python_values(self, data: pa.Table) -> pa.Table:
        """``data`` with columns the driver cannot bind as Python values converted."""
        return data


def rebatch(batches: Iterable[pa.RecordBatch], batch_rows: int,
            schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield ``batches`` cut to at most ``batch_rows`` rows; at least one batch of ``schema``.

    A result without rows still gives one empty batch, so callers keep the schema.
    """
    empty = True
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            empty = False
            yield batch.slice(start, batch_rows)
    if empty:
        from .._arrow import empty_batch

        yield empty_batch(schema)


def _shorten(sql: str, limit: int = 300) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[:limit] + " …"
