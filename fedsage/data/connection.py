"""``DbConnection``: fedml-aws's data API on SAP Datasphere, any SQL URL or DuckDB.

The constructor reads the configuration (see :mod:`fedsage.data.config`) and connects.
One place opens transactions (:meth:`DbConnection._transaction`), so every statement is
compiled by the dialect, runs with bound parameters, commits or rolls back, and has its
driver errors translated into :class:`~fedsage.errors.DataError`.  Caller SQL that
reads (``execute_query``, :meth:`DbConnection.query`, a query string given to
``iter_batches`` / ``export``) is checked once per text (:meth:`DbConnection._check_query`)
and then read by the dialect, which makes the engine enforce one read-only statement.

:class:`~fedsage.data.sources.Query` and :class:`~fedsage.data.sources.Table` are
descriptions; the reading methods here (``iter_batches``, ``to_arrow``, ``to_pandas``,
``export``) read them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._home import atomic_write
from ..errors import DataError
from ._sqltext import first_keyword, statement_count
from .config import ConnectionConfig, embedded_config, from_mapping, load_config
from .dialects import Dialect, open_connection
from .dialects.base import Progress
from .export import check_format, write_batches
from .fedml import FedmlMethods
from .sources import DEFAULT_BATCH_ROWS, Query, Table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DbConnection"]

logger = logging.getLogger(__name__)

_READ_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "(", "TABLE"})
# Strings starting with these are statements (refused as queries), never table names.
_WRITE_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "DROP", "CREATE",
                             "ALTER", "TRUNCATE", "GRANT", "REVOKE", "CALL", "COPY", "SET"})
# Checked query texts kept per connection (a notebook reuses a handful).
_CHECKED_CACHE = 256


class DbConnection(FedmlMethods):
    """A connection to SAP Datasphere, any SQLAlchemy URL, or the embedded warehouse.

    Parameters
    ----------
    package_name : str or None, default=None
        Read ``config.json`` from inside this installed package (as fedml-aws).
    url : str or None, default=None
        Path of the configuration JSON (default ``./config.json``), or directly a
        SQLAlchemy URL such as ``postgresql+psycopg://user@host/db``.  Without a
        configuration file, fedsage's embedded DuckDB warehouse under
        ``FEDSAGE_HOME`` is used.

    Raises
    ------
    ConfigurationError
        If the configuration is missing keys, has unknown keys or wrong values.
    MissingExtraError
        If the HANA driver is needed and ``fedsage[datasphere]`` is not installed.
    DataError
        If the database cannot be reached (the message names host, port and the
        configuration file, never the password).

    Examples
    --------
    >>> from fedsage.data import DbConnection
    >>> db = DbConnection()                      # ./config.json or the embedded warehouse
    >>> rows, headers = db.execute_query('SELECT * FROM "IRIS"')  # doctest: +SKIP
    >>> db.table("IRIS").export_channel(Path("train.csv"))         # doctest: +SKIP

    Warns
    -----
    EmbeddedWarehouseWarning
        Once per process, when no configuration file is found.
    UnknownConfigKeyWarning
        For keys of the configuration file that are ignored.
    """

    def __init__(self, package_name: str | None = None, url: str | None = None) -> None:
        self._open(load_config(package_name, url))

    def _open(self, config: ConnectionConfig) -> None:
        self.config = config
        opened = open_connection(config)
        self.dialect: Dialect = opened.dialect
        self._conn = opened.dbapi
        self._closer = opened.close
        self.closed = False
        self._checked: dict[str, str] = {}
        #: The schema views and tables are read from (fedml-aws: config ``schema``).
        self.schema: str | None = config.schema
        # HANA writes go to the user's own (Open SQL) schema, as with fedml-aws.
        self.write_schema: str | None = None if config.kind == "hana" else config.schema
        if self.write_schema is not None:
            try:
                self.dialect.use_schema(self._conn, self.write_schema)
            except BaseException:
                self.close()
                raise

    @classmethod
    def from_url(cls, url: str, schema: str | None = None) -> DbConnection:
        """Connect to a SQLAlchemy URL without a configuration file.

        Parameters
        ----------
        url : str
            Any SQLAlchemy URL (``duckdb:///path`` is handled natively).
        schema : str or None, default=None
            Default schema for unqualified names.

        Returns
        -------
        DbConnection
        """
        self = cls.__new__(cls)
        self._open(from_mapping({"url": url, "schema": schema}, "<argument>"))
        return self

    @classmethod
    def embedded(cls, path: Path | None = None) -> DbConnection:
        """Open the embedded DuckDB warehouse (default ``FEDSAGE_HOME/warehouse.duckdb``).

        Parameters
        ----------
        path : pathlib.Path or None, default=None
            Another DuckDB file to use.

        Returns
        -------
        DbConnection
        """
        self = cls.__new__(cls)
        self._open(embedded_config(path))
        return self

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<DbConnection {self.config.describe()} schema={self.schema!r}{state}>"

    def __enter__(self) -> DbConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self._closer()

    # -- the one place that runs statements ---------------------------------------

    @contextlib.contextmanager
    def _transaction(self, sql: str, action: str) -> Iterator[Any]:
        """A cursor in a transaction that commits on success and rolls back otherwise."""
        if self.closed:
            raise DataError("this DbConnection is closed; open a new one")
        logger.debug("%s: %s", action, sql)
        ok = False
        cursor = self._conn.cursor()
        try:
            with self.dialect.translate_errors(sql, action):
                yield cursor
            ok = True
        finally:
            cursor.close()
            with self.dialect.translate_errors(sql, "ending the transaction"):
                self.dialect.end(self._conn, ok)

    def _end(self, ok: bool) -> None:
        self.dialect.end(self._conn, ok)

    def _run(self, stmt: Any, action: str, *,
             fetch: bool = True) -> tuple[list[Any], list[str]] | None:
        """Run one statement fedsage built (Core), or caller SQL that writes (text).

        With ``fetch=False`` the statement goes through the dialect's
        :meth:`~fedsage.data.dialects.base.Dialect.run_statement`, which lets the engine
        refuse a second statement.
        """
        sql, bound = (stmt, None) if isinstance(stmt, str) else self.dialect.compile(stmt)
        with self._transaction(sql, action) as cursor:
            if not fetch:
                self.dialect.run_statement(cursor, sql, bound)
                return None
            if bound is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, bound)
            headers = [d[0] for d in cursor.description or ()]
            return cursor.fetchall(), headers

    def _read(self, sql: str, params: Any) -> tuple[list[Any], list[str]]:
        """Read a caller query in a read-only transaction (``execute_query``)."""
        checked = self._check_query(sql)
        with self._transaction(checked, "running the query") as cursor:
            undo = self.dialect.set_read_only(cursor)
            try:
                return self.dialect.fetch_query(self._conn, checked, params)
            finally:
                if undo is not None:
                    undo()

    def _check_query(self, sql: str) -> str:
        """Return ``sql`` ready to run if it can be one read-only statement, else refuse.

        fedsage's lexical check gives a clear message early; engines with a parser at
        hand (DuckDB) check here too.  The engines' own guarantees apply when the query
        is read (see :mod:`fedsage.data.dialects.base`).  Checked once per text.
        """
        if not isinstance(sql, str) or not sql.strip():
            raise DataError("the query must be a non-empty SQL string")
        if sql in self._checked:
            return self._checked[sql]
        if first_keyword(sql) not in _READ_KEYWORDS or statement_count(sql) != 1:
            raise DataError(
                "only one read-only statement (SELECT or WITH ... SELECT) can run here; got "
                f"{first_keyword(sql) or 'nothing'!r}"
                f"{'' if statement_count(sql) <= 1 else f' and {statement_count(sql)} statements'}"
                ". Use create_table, insert_into_table, update_table, ... to change data"
            )
        self.dialect.check_query(self._conn, sql)
        if len(self._checked) >= _CHECKED_CACHE:
            self._checked.clear()
        self._checked[sql] = checked = sql.strip().rstrip(";").rstrip()
        return checked

    # -- sources --------------------------------------------------------------------------

    def table(self, name: str, schema: str | None = None) -> Table:
        """Return a streamable source for all rows of a table or view.

        Parameters
        ----------
        name : str
            The name exactly as stored (quoted, case-sensitive).
        schema : str or None, default=None
            Its schema; default the connection's ``schema``.

        Returns
        -------
        Table
            Accepted by ``train_sklearn_model`` as ``train_data``.
        """
        return Table(self, name, schema if schema is not None else self.schema)

    def query(self, sql: str, params: Any = None) -> Query:
        """Return a streamable source for a read-only query.

        Parameters
        ----------
        sql : str
            One SELECT (or WITH ... SELECT) statement.
        params : sequence or mapping or None, default=None
            Bound parameters in the driver's style.

        Returns
        -------
        Query

        Raises
        ------
        DataError
            If ``sql`` is not a single read-only statement.
        """
        self._check_query(sql)
        return Query(self, sql, params)

    def _source(self, query_or_table: str | Query) -> Query:
        if isinstance(query_or_table, Query):
            return query_or_table
        if not isinstance(query_or_table, str):
            raise DataError(
                "query_or_table must be a SQL query, a table name, or a Table/Query object; "
                f"got {type(query_or_table).__name__}"
            )
        text = query_or_table.strip()
        if len(text.split()) > 1 and (first_keyword(text) in _READ_KEYWORDS
                                      or first_keyword(text) in _WRITE_KEYWORDS):
            return self.query(text)
        return self.table(query_or_table)

    def _batches(self, source: Query, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Check ``source`` now; return the generator that reads it."""
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
            raise DataError(f"batch_rows must be a positive integer; got {batch_rows!r}")
        if isinstance(source, Table):
            return self._stream(source.sql, lambda: self.dialect.iter_table_arrow(
                self._conn, source.name, source.schema, batch_rows))
        sql, params = self._check_query(source.sql), source.params
        return self._stream(sql, lambda: self.dialect.iter_arrow(self._conn, sql, params,
                                                                 batch_rows))

    def _stream(self, sql: str, read: Any) -> Iterator[pa.RecordBatch]:
        if self.closed:
            raise DataError("this DbConnection is closed; open a new one")
        ok = False
        try:
            with self.dialect.translate_errors(sql, "reading the result"):
                yield from read()
            ok = True
        finally:
            if ok:  # a lost connection shows here first when the read itself was done
                with self.dialect.translate_errors(sql, "ending the read"):
                    self._end(ok)
            else:  # the read's own error is the one to report
                with contextlib.suppress(Exception):
                    self._end(ok)

    @contextlib.contextmanager
    def _engine_export(self) -> Iterator[None]:
        """An export the engine runs itself: its transaction ends after it (rolled back
        when it fails)."""
        if self.closed:
            raise DataError("this DbConnection is closed; open a new one")
        ok = False
        try:
            yield
            ok = True
        finally:
            self._end(ok)

    def _copy_csv(self, source: Query, handle: IO[bytes], progress: Progress | None) -> int:
        with self._engine_export():
            if isinstance(source, Table):
                return self.dialect.copy_table_csv(self._conn, source.name, source.schema,
                                                   handle, progress)
            return self.dialect.copy_csv(self._conn, self._check_query(source.sql),
                                         source.params, handle, progress)

    def _native_parquet(self, source: Query, path: Path, progress: Progress | None
                        ) -> int | None:
        """Parquet by the engine's own writer; ``None`` (nothing written): use Arrow."""
        with self._engine_export():
            sql = source.sql if isinstance(source, Table) else self._check_query(source.sql)
            return self.dialect.write_parquet(self._conn, sql, source.params, path, progress)

    # -- reading ------------------------------------------------------------------------

    @contextlib.contextmanager
    def bounded_memory(self, limit: int) -> Iterator[bool]:
        """Cap the database engine's own memory while a long read runs (DuckDB only).

        DuckDB runs inside this process and its buffer pool keeps the blocks a scan read
        (up to its ``memory_limit``, default 80% of RAM), so reading a big table grows
        the process by the table's size.  Inside the block DuckDB's ``memory_limit`` is
        ``limit`` bytes, and is reset when the block ends -- only when fedsage opened the
        database without a ``memory_limit`` of its own (so the reset restores exactly
        what was in effect) and DuckDB can spill to its temporary directory.  Other
        engines run in their own processes: nothing changes.  The limit is the
        database's, so other threads using the same database meanwhile share it.

        Parameters
        ----------
        limit : int
            Bytes.

        Yields
        ------
        bool
            Whether the limit was lowered.
        """
        with self.dialect.bounded_memory(self._conn, limit) as lowered:
            yield lowered

    def iter_batches(self, query_or_table: str | Query,
                     batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream a table, view or query as Arrow record batches.

        Parameters
        ----------
        query_or_table : str or Table or Query
            A SELECT query, a table/view name (in the connection's schema), or an
            object from :meth:`table` / :meth:`query`.
        batch_rows : int, default=65536
            The most rows per batch.

        Returns
        -------
        iterator of pyarrow.RecordBatch
            Batches sharing one schema; at least one (possibly empty) batch.

        Raises
        ------
        DataError
            If the query fails or is not one read-only statement.
        """
        source = self._source(query_or_table)
        if source.connection is not self:
            return source.connection.iter_batches(source, batch_rows)
        return self._batches(source, batch_rows)

    def to_arrow(self, query_or_table: str | Query) -> pa.Table:
        """Return a table, view or query as an Arrow table (see :meth:`iter_batches`).

        Parameters
        ----------
        query_or_table : str or Table or Query
            What to read.

        Returns
        -------
        pyarrow.Table
        """
        import pyarrow as pa

        return pa.Table.from_batches(list(self.iter_batches(query_or_table)))

    def to_pandas(self, query_or_table: str | Query) -> Any:
        """Return a table, view or query as a pandas DataFrame.

        Parameters
        ----------
        query_or_table : str or Table or Query
            What to read.

        Returns
        -------
        pandas.DataFrame
        """
        return self.to_arrow(query_or_table).to_pandas()

    def export(self, query_or_table: str | Query, path: str | Path, file_format: str = "csv",
               progress: Progress | None = None) -> int:
        """Write a table, view or query to a channel file without holding it in memory.

        The engine's own CSV export is used where there is one (PostgreSQL ``COPY``),
        and its own Parquet writer (DuckDB) where the file reads back the same;
        otherwise Arrow batches are written one at a time.

        Parameters
        ----------
        query_or_table : str or Table or Query
            What to export.
        path : str or pathlib.Path
            The file (written atomically).
        file_format : {'csv', 'parquet'}, default='csv'
            CSV is written without header and without index.
        progress : callable or None, default=None
            Called with the number of rows written so far.

        Returns
        -------
        int
            Rows written.

        Raises
        ------
        DataError
            If reading fails.
        ConfigurationError
            If ``file_format`` is not supported.
        """
        source = self._source(query_or_table)
        if source.connection is not self:
            return source.connection.export(source, path, file_format, progress)
        fmt = check_format(file_format)
        if fmt == "parquet" and self.dialect.has_native_parquet:
            rows = self._native_parquet(source, Path(path), progress)
            if rows is not None:
                return rows
        if fmt == "csv" and self.dialect.has_copy_csv:
            if isinstance(source, Query) and not isinstance(source, Table):
                self._check_query(source.sql)  # before the file is opened
            with atomic_write(Path(path)) as handle:
                return self._copy_csv(source, handle, progress)
        return write_batches(self._batches(source, DEFAULT_BATCH_ROWS), Path(path), fmt,
                             progress)
