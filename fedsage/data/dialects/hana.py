"""SAP HANA / SAP Datasphere: the ``SYS`` catalog, compiled by sqlalchemy-hana.

Statements compile with sqlalchemy-hana's dialect (``qmark`` parameters, HANA's
quoting and row limits).  Catalog queries read ``SYS.VIEWS``, ``SYS.TABLES``,
``SYS.VIEW_COLUMNS`` and ``SYS.TABLE_COLUMNS`` with the schema and names bound as
values.  hdbcli has no columnar API, so results stream through ``fetchmany``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal, literal_column, select
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.expression import column, table

from ...errors import MissingExtraError, import_extra
from .base import COLUMN_HEADERS, Dialect

__all__ = ["HanaDialect", "import_hdbcli"]


def import_hdbcli() -> Any:
    """Import ``hdbcli.dbapi``, or raise :class:`MissingExtraError` (``fedsage[datasphere]``)."""
    return import_extra("hdbcli.dbapi", "datasphere")


def _hana_sa_dialect() -> Any:
    return import_extra("sqlalchemy_hana.dialect", "datasphere").HANAHDBCLIDialect()


def _sys(name: str, *columns: str) -> Any:
    return table(name, *[column(c) for c in columns], schema="SYS")


class HanaDialect(Dialect):
    """SAP HANA Cloud / Datasphere."""

    name = "hana"

    def __init__(self) -> None:
        super().__init__(_hana_sa_dialect())
        try:
            self.driver_errors = (import_hdbcli().Error,)
        except MissingExtraError:  # compiling SQL needs no driver; connecting does
            self.driver_errors = ()

    def _schema_filter(self, schema: str | None) -> Any:
        # HANA's CURRENT_SCHEMA is a bare keyword, not a function call.
        return literal(schema) if schema is not None else literal_column("CURRENT_SCHEMA")

    def views(self, schema: str | None, name_contains: str | None = None) -> ClauseElement:
        """``SYS.VIEWS`` of ``schema`` (names bound, LIKE pattern escaped)."""
        v = _sys("VIEWS", "SCHEMA_NAME", "VIEW_NAME", "VIEW_TYPE")
        stmt = select(v.c.VIEW_NAME, v.c.VIEW_TYPE).where(
            self._schema_filter(schema) == v.c.SCHEMA_NAME)
        if name_contains is not None:
            stmt = stmt.where(func.lower(v.c.VIEW_NAME).contains(name_contains.lower(),
                                                                 autoescape=True))
        return stmt.order_by(v.c.VIEW_NAME)

    def tables(self, schema: str | None) -> ClauseElement:
        """User tables of ``schema`` from ``SYS.TABLES`` (no temporary or type tables)."""
        t = _sys("TABLES", "SCHEMA_NAME", "TABLE_NAME", "TABLE_TYPE", "COMMENTS", "CREATE_TIME",
                 "IS_USER_DEFINED_TYPE", "IS_TEMPORARY")
        return select(t.c.TABLE_NAME, t.c.SCHEMA_NAME, t.c.TABLE_TYPE, t.c.COMMENTS,
                      t.c.CREATE_TIME).where(
            self._schema_filter(schema) == t.c.SCHEMA_NAME,
            t.c.IS_USER_DEFINED_TYPE == "FALSE", t.c.IS_TEMPORARY == "FALSE",
        ).order_by(t.c.TABLE_NAME)

    def columns(self, name: str, schema: str | None, kind: str) -> ClauseElement:
        """``SYS.VIEW_COLUMNS`` or ``SYS.TABLE_COLUMNS`` of one object, by position."""
        owner = "VIEW_NAME" if kind == "view" else "TABLE_NAME"
        c = _sys("VIEW_COLUMNS" if kind == "view" else "TABLE_COLUMNS", "SCHEMA_NAME", owner,
                 *COLUMN_HEADERS)
        return select(*[c.c[name] for name in COLUMN_HEADERS]).where(
            self._schema_filter(schema) == c.c.SCHEMA_NAME, c.c[owner] == name,
        ).order_by(c.c.POSITION)

    # -- writing (fedsage.data.writer); not run against a HANA server in the suite ---

    def begin_write(self, conn: Any) -> None:
        """Make DDL part of the transaction (HANA commits DDL on its own by default)."""
        conn.setautocommit(False)
        cursor = conn.cursor()
        try:
            cursor.execute("SET TRANSACTION AUTOCOMMIT DDL OFF")
        finally:
            cursor.close()

    def arrow_sql_type(self, dtype: Any, column: str) -> Any:
        """As the base, but strings are ``NVARCHAR(5000)`` (``Text`` would be an NCLOB)."""
        import pyarrow as pa
        import sqlalchemy as sa

        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype):
            return sa.Unicode(5000)
        return super().arrow_sql_type(dtype, column)
