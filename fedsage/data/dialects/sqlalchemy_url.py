"""Any database SQLAlchemy can reach through a URL, plus SQLite's catalog.

The generic dialect compiles with the URL's own SQLAlchemy dialect and reads the
catalog from ``information_schema``; SQLite, which has none, overrides the catalog
with ``sqlite_master`` and ``pragma_table_info``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Dialect

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine.interfaces import Dialect as SADialect
    from sqlalchemy.sql import ClauseElement

__all__ = ["SQLAlchemyDialect", "SQLiteDialect"]


class SQLAlchemyDialect(Dialect):
    """A database reached through a SQLAlchemy engine (``information_schema`` catalog).

    Parameters
    ----------
    sa_dialect : sqlalchemy.engine.interfaces.Dialect or None
        The engine's dialect (``None``: a subclass makes it on first use).
    driver_errors : tuple of exception classes
        The DB-API driver's ``Error`` class(es).
    name : str or None, default=None
        The engine name in messages; default the SQLAlchemy dialect's name.
    """

    def __init__(self, sa_dialect: SADialect | None,
                 driver_errors: tuple[type[BaseException], ...], name: str | None = None) -> None:
        super().__init__(sa_dialect)
        if name is not None or sa_dialect is not None:
            self.name = name if name is not None else sa_dialect.name  # type: ignore[union-attr]
        self.driver_errors = driver_errors


class SQLiteDialect(SQLAlchemyDialect):
    """SQLite: one schema per file, catalog in ``sqlite_master``.

    ``sqlite3``'s ``execute`` refuses a second statement, and ``PRAGMA query_only`` makes
    every read of caller SQL (rows and streams alike) read-only.
    """

    quote_char = '"'

    def __init__(self, sa_dialect: SADialect) -> None:
        # Python before 3.11 raised sqlite3.Warning for a second statement in execute().
        super().__init__(sa_dialect, (sqlite3.Error, sqlite3.Warning))

    def current_schema(self) -> Any:
        """SQLite's main database is called ``main``."""
        from sqlalchemy import literal

        return literal("main")

    def use_schema(self, conn: Any, schema: str) -> None:
        """SQLite has one schema per file: nothing to switch."""

    def views(self, schema: str | None, name_contains: str | None = None) -> ClauseElement:
        """Views from ``sqlite_master`` (the schema is ignored: one file, one schema)."""
        from sqlalchemy import func, literal, select
        from sqlalchemy.sql.expression import column, table

        m = table("sqlite_master", column("type"), column("name"))
        stmt = select(m.c.name.label("VIEW_NAME"), literal("VIEW").label("VIEW_TYPE")).where(
            m.c.type == "view")
        if name_contains is not None:
            stmt = stmt.where(func.lower(m.c.name).contains(name_contains.lower(),
                                                            autoescape=True))
        return stmt.order_by(m.c.name)

    def tables(self, schema: str | None) -> ClauseElement:
        """Tables from ``sqlite_master``, without SQLite's internal ``sqlite_*`` tables.

        SQLite keeps no comments and no creation times: those columns are NULL.
        """
        from sqlalchemy import literal, null, select
        from sqlalchemy.sql.expression import column, table

        m = table("sqlite_master", column("type"), column("name"))
        return select(m.c.name.label("TABLE_NAME"), literal("main").label("SCHEMA_NAME"),
                      literal("BASE TABLE").label("TABLE_TYPE"), null().label("COMMENTS"),
                      null().label("CREATE_TIME")).where(
            m.c.type == "table", ~m.c.name.startswith("sqlite_")).order_by(m.c.name)

    def columns(self, name: str, schema: str | None, kind: str) -> ClauseElement:
        """Columns from ``pragma_table_info(name)`` (a bound parameter).

        SQLite has no lengths, scales, comments or index types per column: NULL.
        """
        from sqlalchemy import case, func, null, select

        info = func.pragma_table_info(name).table_valued(
            "cid", "name", "type", "notnull", "dflt_value", "pk")
        return select(
            (info.c.cid + 1).label("POSITION"), info.c.name.label("COLUMN_NAME"),
            func.upper(info.c.type).label("DATA_TYPE_NAME"), null().label("LENGTH"),
            case((info.c.notnull == 0, "TRUE"), else_="FALSE").label("IS_NULLABLE"),
            null().label("SCALE"), info.c.dflt_value.label("DEFAULT_VALUE"),
            null().label("INDEX_TYPE"), null().label("GENERATION_TYPE"),
            null().label("COMMENTS"),
        ).order_by(info.c.cid)

    def set_read_only(self, cursor: Any) -> Callable[[], None] | None:
        """``PRAGMA query_only``: SQLite itself refuses writes until it is switched off."""
        cursor.execute("PRAGMA query_only = ON")

        def undo() -> None:
            cursor.execute("PRAGMA query_only = OFF")

        return undo

    # -- writing (fedsage.data.writer) --------------------------------------------

    temp_schema = "temp"

    def begin_write(self, conn: Any) -> None:
        """``BEGIN``: Python's sqlite3 would run DDL outside any transaction otherwise."""
        conn.cursor().execute("BEGIN")

    def python_values(self, data: pa.Table) -> pa.Table:
        """Timestamps, dates and times as ISO text, decimals as text (sqlite3 binds neither
        natively), as SQLAlchemy's SQLite types store them."""
        import pyarrow as pa

        t = pa.types
        for i, field in enumerate(data.schema):
            if t.is_timestamp(field.type) or t.is_date(field.type) or t.is_time(field.type) \
                    or t.is_decimal(field.type):
                data = data.set_column(i, field.name, data.column(i).cast(pa.string()))
        return data
