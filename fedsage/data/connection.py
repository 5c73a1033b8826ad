"""``DbConnection``: fedml-aws's data API on SAP Datasphere, any SQL URL or DuckDB.

The constructor reads the configuration (see :mod:`fedsage.data.config`) and connects.
One place opens cursors (:meth:`DbConnection._run`), so every statement is compiled by
the dialect, runs with bound parameters, commits or rolls back, and has its driver
errors translated into :class:`~fedsage.errors.DataError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import DataError
from ._sqltext import first_keyword, statement_count
from .config import ConnectionConfig, embedded_config, from_mapping, load_config
from .dialects import Dialect, open_connection
from .dialects.base import Progress
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

    def _compile(self, stmt: Any) -> tuple[str, Any]:
        return self.dialect.compile(stmt)

    def _end(self, ok: bool) -> None:
        self.dialect.end(self._conn, ok)

    def _run(self, stmt: Any, action: str, *, params: Any = None, fetch: bool = True,
             read_only: bool = False) -> tuple[list[Any], list[str]] | None:
        """Run one statement (a Core statement, or caller SQL text with ``params``)."""
        if self.closed:
            raise DataError("this DbConnection is closed; open a new one")
        sql, bound = (stmt, params) if isinstance(stmt, str) else self._compile(stmt)
        logger.debug("%s: %s", action, sql)
        ok = False
        cursor = self._conn.cursor()
        try:
            with self.dialect.translate_errors(sql, action):
                undo = self.dialect.set_read_only(cursor) if read_only else None
                if bound is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, bound)
                result = None
                if fetch:
                    headers = [d[0] for d in cursor.description or ()]
                    result = (cursor.fetchall(), headers)
                if undo is not None:
                    undo()
            ok = True
            return result
        finally:
            cursor.close()
            with self.dialect.translate_errors(sql, "ending the transaction"):
                self._end(ok)

    def _check_query(self, sql: str) -> str:
        if not isinstance(sql, str) or not sql.strip():
            raise DataError("the query must be a non-empty SQL string")
        if first_keyword(sql) not in _READ_KEYWORDS or statement_count(sql) != 1:
            raise DataError(
                "only one read-only statement (SELECT or WITH ... SELECT) can run here; got "
                f"{first_keyword(sql) or 'nothing'!r}. Use create_table, insert_into_table, "
                "update_table, ... to change data"
            )
        self.dialect.check_read_only(self._conn, sql)
        return sql.strip().rstrip(";").rstrip()

    # -- streaming ----------------------------------------------------------------------

    def _stream(self, sql: str, params: Any, batch_rows: int,
                table: tuple[str, str | None] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream ``sql``; ``table``: ``(name, schema)`` when it reads one whole table."""
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise DataError(f"batch_rows must be a positive integer; got {batch_rows!r}")
        ok = False
        try:
            with self.dialect.translate_errors(sql, "reading the result"):
                if table is None:
                    yield from self.dialect.iter_arrow(self._conn, sql, params, batch_rows)
                else:
                    yield from self.dialect.iter_table_arrow(self._conn, *table, batch_rows)
            ok = True
        finally:
            self._end(ok)

    def _copy_csv(self, sql: str, params: Any, handle: IO[bytes], progress: Progress | None,
                  table: tuple[str, str | None] | None = None) -> int:
        ok = False
        try:
            if table is None:
                rows = self.dialect.copy_csv(self._conn, sql, params, handle, progress)
            else:
                rows = self.dialect.copy_table_csv(self._conn, *table, handle, progress)
            ok = True
            return rows
        finally:
            self._end(ok)

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
        checked = self._check_query(sql)
        query = Query(self, sql, params)
        query._checked = (sql, checked)
        return query

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
            If the query fails or is not read-only.
        """
        return self._source(query_or_table).iter_batches(batch_rows)

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
        return self._source(query_or_table).to_arrow()

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
        return self._source(query_or_table).to_pandas()

    def export(self, query_or_table: str | Query, path: str | Path, file_format: str = "csv",
               progress: Progress | None = None) -> int:
        """Write a table, view or query to a channel file without holding it in memory.

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
        return self._source(query_or_table).export_channel(Path(path), file_format, progress)
