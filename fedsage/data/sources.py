"""Table and query objects: what ``train_sklearn_model`` accepts as ``train_data``.

A :class:`Query` or :class:`Table` is a description (which rows, on which connection);
the connection reads it.  Sources use only the connection's public reading methods
(:class:`Reader`: ``iter_batches``, ``to_arrow``, ``to_pandas``, ``export``), so this
module does not import :mod:`fedsage.data.connection`, which imports it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .dialects.base import Progress

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .dialects.base import Dialect

__all__ = ["DEFAULT_BATCH_ROWS", "Query", "Reader", "Table"]

DEFAULT_BATCH_ROWS = 65_536


class Reader(Protocol):
    """What a source needs from its connection; :class:`~fedsage.data.DbConnection` is one."""

    dialect: Dialect

    def iter_batches(self, query_or_table: Any,
                     batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the rows of a source as Arrow record batches."""
        ...

    def to_arrow(self, query_or_table: Any) -> pa.Table:
        """Return the rows of a source as an Arrow table."""
        ...

    def to_pandas(self, query_or_table: Any) -> Any:
        """Return the rows of a source as a pandas DataFrame."""
        ...

    def export(self, query_or_table: Any, path: str | pathlib.Path, file_format: str = "csv",
               progress: Progress | None = None) -> int:
        """Write the rows of a source to a channel file; return how many."""
        ...


class Query:
    """The result of a read-only SQL query on a :class:`~fedsage.data.DbConnection`.

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

    def __init__(self, connection: Reader, sql: str, params: Any = None) -> None:
        self.connection = connection
        self.sql = sql
        self.params = params

    def __repr__(self) -> str:
        text = " ".join(self.sql.split())
        text = text if len(text) <= 80 else text[:77] + "..."
        bound = "" if self.params is None else f", {len(self.params)} parameter(s)"
        return f"Query({text!r}{bound})"

    def _repr_html_(self) -> str:
        """A notebook summary: where the rows come from and how to read them."""
        import html

        where = html.escape(repr(self.connection))
        bound = "" if self.params is None else f" ({len(self.params)} bound parameter(s))"
        return (
            f"<div><b>{html.escape(type(self).__name__)}</b> on {where}{bound}"
            f"<pre>{html.escape(self.sql)}</pre>"
            "<small>read with .to_pandas(), .to_arrow() or .iter_batches(); pass it as "
            "train_data to stream it into a channel</small></div>"
        )

    def iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Yield the rows as Arrow record batches of at most ``batch_rows`` rows."""
        return self.connection.iter_batches(self, batch_rows)

    def to_arrow(self) -> pa.Table:
        """Return all rows as an Arrow table."""
        return self.connection.to_arrow(self)

    def to_pandas(self) -> pd.DataFrame:
        """Return all rows as a pandas DataFrame."""
        return self.connection.to_pandas(self)

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
            If the database fails while reading, or the query is not one read-only
            statement.
        ConfigurationError
            If ``file_format`` is not supported.
        """
        return self.connection.export(self, path, file_format, progress)


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

    def __init__(self, connection: Reader, name: str, schema: str | None = None) -> None:
        self.name = name
        self.schema = schema
        # Written without SQLAlchemy where the dialect can (see Dialect.select_all).
        sql, params = connection.dialect.select_all(name, schema)
        super().__init__(connection, sql, params)

    def __repr__(self) -> str:
        where = f"{self.schema}." if self.schema else ""
        return f"Table({where}{self.name!r})"
