"""Table and query objects: what ``train_sklearn_model`` accepts as ``train_data``.

Both stream their rows into a channel file with :meth:`export_channel`, straight from
the database: the engine's own CSV export when it has one (PostgreSQL ``COPY``),
otherwise Arrow batches written one at a time.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._home import atomic_write
from .dialects.base import Progress
from .export import check_format

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .connection import DbConnection

__all__ = ["Query", "Table"]

DEFAULT_BATCH_ROWS = 65_536


class Query:
    """The result of a read-only SQL query on a :class:`DbConnection`.

    Parameters
    ----------
    connection : DbConnection
        Where the query runs.
    sql : str
        The query, as written by the caller; values belong in ``params``.
    params : sequence or mapping or None, default=None
        Bound parameters in the driver's style (``?`` for DuckDB, SQLite and HANA,
        ``%(name)s`` or ``%s`` for PostgreSQL).
    """

    def __init__(self, connection: DbConnection, sql: str, params: Any = None) -> None:
        self.connection = connection
        self.sql = sql
        self.params = params
        #: ``(sql, checked text)`` once ``sql`` passed ``DbConnection._check_query``.
        self._checked: tuple[str, str] | None = None
        #: ``(name, schema)`` when the rows are one whole table (engines read it faster).
        self._table: tuple[str, str | None] | None = None

    def __repr__(self) -> str:
        text = " ".join(self.sql.split())
        text = text if len(text) <= 80 else text[:77] + "..."
        bound = "" if self.params is None else f", {len(self.params)} parameter(s)"
        return f"Query({text!r}{bound})"

    def _statement(self) -> tuple[str, Any]:
        # Checked once per text (DuckDB parses it): DbConnection.query already did.
        if self._checked is None or self._checked[0] != self.sql:
            self._checked = (self.sql, self.connection._check_query(self.sql))
        return self._checked[1], self.params

    def iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Yield the rows as Arrow record batches of at most ``batch_rows`` rows."""
        sql, params = self._statement()
        return self.connection._stream(sql, params, batch_rows, self._table)

    def to_arrow(self) -> pa.Table:
        """Return all rows as an Arrow table."""
        import pyarrow as pa

        return pa.Table.from_batches(list(self.iter_batches()))

    def to_pandas(self) -> pd.DataFrame:
        """Return all rows as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def export_channel(self, path: pathlib.Path, file_format: str = "csv",
                       progress: Progress | None = None) -> int:
        """Write the rows to ``path`` (CSV without header/index, or ``'parquet'``).

        Parameters
        ----------
        path : pathlib.Path
            The channel file; written atomically.
        file_format : {'csv', 'parquet'}, default='csv'
            The channel's format.
        progress : callable or None, default=None
            Called with the number of rows written so far.

        Returns
        -------
        int
            The number of rows written.

        Raises
        ------
        DataError
            If the database fails while reading.
        ConfigurationError
            If ``file_format`` is not supported.
        """
        fmt = check_format(file_format)
        sql, params = self._statement()
        if fmt == "csv" and self.connection.dialect.has_copy_csv:
            with atomic_write(pathlib.Path(path)) as handle:
                return self.connection._copy_csv(sql, params, handle, progress, self._table)
        from .export import write_batches

        return write_batches(self.iter_batches(), pathlib.Path(path), fmt, progress)


class Table(Query):
    """All rows of one table or view.

    Parameters
    ----------
    connection : DbConnection
        Where the table lives.
    name : str
        The table or view name, exactly as stored (it is quoted, never folded).
    schema : str or None, default=None
        Its schema; ``None`` means the connection's default schema.
    """

    def __init__(self, connection: DbConnection, name: str, schema: str | None = None) -> None:
        self.name = name
        self.schema = schema
        # Written without SQLAlchemy where the dialect can (see Dialect.select_all).
        sql, params = connection.dialect.select_all(name, schema)
        super().__init__(connection, sql, params)
        self._table = (name, schema)

    def __repr__(self) -> str:
        where = f"{self.schema}." if self.schema else ""
        return f"Table({where}{self.name!r})"

    def _statement(self) -> tuple[str, Any]:
        return self.sql, self.params
