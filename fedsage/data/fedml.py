"""The 14 data methods of fedml-aws's ``DbConnection``: same names, arguments, returns.

Parameter names, order and defaults are fedml-aws 2.0.2's (a test reads them from its
wheel), and so are the return shapes: ``(rows, headers)`` with fedml-aws's headers in
fedml-aws's order, ``[(n,)]`` for ``get_table_size``, ``None`` for the writes.  On an
engine without one of HANA's catalog columns the value is NULL (``None``).

What changed is how they work: names are quoted by the dialect, values are bound
parameters, inserts are bulk, failures raise :class:`~fedsage.errors.DataError`, and
``execute_query`` runs only one read-only statement.  The clause arguments of
``delete_from_table``, ``update_table`` and ``alter_table`` are the caller's own SQL,
placed after the quoted table name, as in fedml-aws; a second statement smuggled in is
refused (by the engine where it can).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ._sqltext import first_keyword, statement_count

if TYPE_CHECKING:
    from .dialects.base import Dialect

__all__ = ["INSERTED_AT", "FedmlMethods"]

INSERTED_AT = "INSERTED_AT"
Rows = tuple[list[tuple[Any, ...]], list[str]]


def _check_name(value: Any, parameter: str) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(f"the {parameter} parameter must be a non-empty string; got {value!r}")
    return value


def _check_clause(value: Any, parameter: str) -> str | None:
    """A caller clause: ``None`` (fedml-aws: no WHERE, every row) or non-empty SQL text."""
    return None if value is None else _check_name(value, parameter)


def _tuples(result: tuple[list[Any], list[str]] | None) -> Rows:
    assert result is not None
    rows, headers = result
    return [tuple(r) for r in rows], headers


class FedmlMethods:
    """Mixin with fedml-aws's methods; :class:`~fedsage.data.DbConnection` provides ``_run``."""

    dialect: Dialect
    schema: str | None
    write_schema: str | None
    _conn: Any

    if TYPE_CHECKING:
        def _run(self, stmt: Any, action: str, *,
                 fetch: bool = True) -> tuple[list[Any], list[str]] | None: ...
        def _read(self, sql: str, params: Any) -> tuple[list[Any], list[str]]: ...
        def _end(self, ok: bool) -> None: ...

    def get_schema_views(self) -> Rows:
        """List the views of the configured schema.

        Returns
        -------
        rows : list of tuple
            ``(VIEW_NAME, VIEW_TYPE)`` per view.
        headers : list of str
        """
        return _tuples(self._run(self.dialect.views(self.schema), "listing views"))

    def get_table_size(self, table_name: str) -> list[tuple[int]]:
        """Count the rows of a table or view in the configured schema.

        Parameters
        ----------
        table_name : str
            Exact (case-sensitive) name.

        Returns
        -------
        list of tuple
            ``[(n,)]``, as fedml-aws.

        Raises
        ------
        DataError
            If the table does not exist or the query fails.
        """
        name = _check_name(table_name, "table_name")
        rows, _ = _tuples(self._run(self.dialect.count(name, self.schema), f"counting {name!r}"))
        return [(int(rows[0][0]),)]

    def get_data_with_headers(self, table_name: str, size: float = 1) -> Rows:
        """Read the first ``int(n * size)`` rows of a table or view (not a random sample).

        Parameters
        ----------
        table_name : str
            Exact name, in the configured schema.
        size : float, default=1
            Fraction of the rows, in (0, 1].

        Returns
        -------
        rows : list of tuple
        headers : list of str

        Raises
        ------
        DataError
            If ``size`` is not in (0, 1] or the query fails.
        """
        name = _check_name(table_name, "table_name")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size <= 1:
            raise DataError(f"the size parameter must be a fraction in (0, 1]; got {size!r}")
        limit = None if size == 1 else int(self.get_table_size(name)[0][0] * size)
        return _tuples(self._run(self.dialect.head(name, self.schema, limit), f"reading {name!r}"))

    def execute_query(self, query: str) -> Rows:
        """Run one read-only query.

        For bound parameters use ``db.query(sql, params)`` (``.to_pandas()``,
        ``.to_arrow()``); ``execute_query`` keeps fedml-aws's one argument.

        Parameters
        ----------
        query : str
            A single SELECT (or WITH ... SELECT, VALUES, TABLE) statement.

        Returns
        -------
        rows : list of tuple
        headers : list of str

        Raises
        ------
        DataError
            If the statement is not a single read-only query, or fails.
        """
        return _tuples(self._read(query, None))

    def _run_caller_sql(self, sql: str, action: str) -> None:
        if statement_count(sql) != 1:
            raise DataError(
                f"{action}: the clause must not end the statement or start another (no ';')"
            )
        self._run(sql, action, fetch=False)

    def create_table(self, query: str) -> None:
        """Run a ``CREATE TABLE`` statement, adding fedml-aws's ``INSERTED_AT`` column.

        Parameters
        ----------
        query : str
            ``CREATE TABLE name (col type, ...)``, without an ``INSERTED_AT`` column.

        Raises
        ------
        DataError
            If ``query`` is not one CREATE TABLE statement ending in ``)``, mentions
            ``INSERTED_AT``, or fails.
        """
        text = _check_name(query, "query").strip().rstrip(";").rstrip()
        if first_keyword(text) != "CREATE" or not text.endswith(")"):
            raise DataError("create_table needs one 'CREATE TABLE name (...)' statement")
        if INSERTED_AT.lower() in text.lower():
            raise DataError(
                "create_table adds the INSERTED_AT column itself; remove it from the query"
            )
        self._run_caller_sql(self.dialect.create_table_with_inserted_at(text), "creating a table")

    def drop_table(self, table_name: str) -> None:
        """Drop a table in the write schema (HANA: the user's own schema).

        Parameters
        ----------
        table_name : str
            Exact name.

        Raises
        ------
        DataError
            If it does not exist or cannot be dropped.
        """
        name = _check_name(table_name, "table_name")
        self._run(self.dialect.drop_table(name, self.write_schema), f"dropping {name!r}",
                  fetch=False)

    def insert_into_table(self, table_name: str, table_values: Any) -> None:
        """Insert a DataFrame's rows in bulk, with ``INSERTED_AT`` set to now (local time).

        Parameters
        ----------
        table_name : str
            Exact name, in the write schema.
        table_values : pandas.DataFrame
            Columns named like the table's columns (without ``INSERTED_AT``).

        Raises
        ------
        DataError
            If ``table_values`` is not a DataFrame, has an ``INSERTED_AT`` column, or
            the insert fails (nothing is inserted then).
        """
        import pandas as pd
        import pyarrow as pa

        name = _check_name(table_name, "table_name")
        if not isinstance(table_values, pd.DataFrame):
            raise DataError("the table_values parameter must be a pandas DataFrame; got "
                            f"{type(table_values).__name__}")
        frame = table_values.rename(columns=str)
        if any(c.upper() == INSERTED_AT for c in frame.columns):
            raise DataError("table_values must not have an INSERTED_AT column; it is set for you")
        try:
            data = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"cannot convert table_values for {name!r}: {exc}") from exc
        now = datetime.datetime.now().replace(microsecond=0)
        data = data.append_column(INSERTED_AT, pa.array([now] * data.num_rows,
                                                        type=pa.timestamp("us")))
        ok = False
        try:
            self.dialect.insert_arrow(self._conn, name, self.write_schema, data)
            ok = True
        finally:
            self._end(ok)

    def delete_from_table(self, table_name: str, where_clause: str | None = None) -> None:
        """``DELETE FROM "table" [WHERE <where_clause>]`` (the clause is caller SQL).

        Parameters
        ----------
        table_name : str
            Exact name, in the write schema.
        where_clause : str or None, default=None
            The condition, as SQL text; ``None`` deletes every row (as fedml-aws).

        Raises
        ------
        DataError
            If the statement fails or the clause holds more than one statement.
        """
        name = _check_name(table_name, "table_name")
        where = _check_clause(where_clause, "where_clause")
        self._run_caller_sql(self.dialect.delete_rows(name, self.write_schema, where),
                             f"deleting from {name!r}")

    def update_table(self, table_name: str, set_clause: str,
                     where_clause: str | None = None) -> None:
        """``UPDATE "table" SET <set_clause> [WHERE <where_clause>]`` (clauses are caller SQL).

        Parameters
        ----------
        table_name : str
            Exact name, in the write schema.
        set_clause : str
            Assignments, as SQL text.
        where_clause : str or None, default=None
            The condition, as SQL text; ``None`` updates every row (as fedml-aws).

        Raises
        ------
        DataError
            If the statement fails or a clause holds more than one statement.
        """
        name = _check_name(table_name, "table_name")
        sets = _check_name(set_clause, "set_clause")
        where = _check_clause(where_clause, "where_clause")
        self._run_caller_sql(self.dialect.update_rows(name, self.write_schema, sets, where),
                             f"updating {name!r}")

    def alter_table(self, table_name: str, clause: str) -> None:
        """``ALTER TABLE "table" <clause>`` (the clause is caller SQL).

        Parameters
        ----------
        table_name : str
            Exact name, in the write schema.
        clause : str
            E.g. ``ADD (NOTE VARCHAR(20))`` on HANA, ``ADD COLUMN note TEXT`` elsewhere.

        Raises
        ------
        DataError
            If the statement fails or the clause holds more than one statement.
        """
        name = _check_name(table_name, "table_name")
        text = _check_name(clause, "clause")
        self._run_caller_sql(self.dialect.alter_table(name, self.write_schema, text),
                             f"altering {name!r}")

    def get_view_metadata(self, view_name: str) -> Rows:
        """Describe the columns of a view in the configured schema.

        Parameters
        ----------
        view_name : str
            Exact name.

        Returns
        -------
        rows : list of tuple
        headers : list of str
            ``POSITION, COLUMN_NAME, DATA_TYPE_NAME, LENGTH, IS_NULLABLE, SCALE,
            DEFAULT_VALUE, INDEX_TYPE, GENERATION_TYPE, COMMENTS`` (fedml-aws's columns of
            HANA's ``VIEW_COLUMNS``, in its order; ``IS_NULLABLE`` is ``'TRUE'`` or
            ``'FALSE'``; NULL where the engine has no such information).
        """
        name = _check_name(view_name, "view_name")
        return _tuples(self._run(self.dialect.columns(name, self.schema, "view"),
                                 f"describing view {name!r}"))

    def get_view_by_name(self, view_name: str) -> Rows:
        """Find views whose name contains ``view_name`` (case-insensitive, literal match).

        Parameters
        ----------
        view_name : str
            Part of a name; ``%`` and ``_`` match themselves.

        Returns
        -------
        rows : list of tuple
            ``(VIEW_NAME, VIEW_TYPE)``.
        headers : list of str
        """
        part = _check_name(view_name, "view_name")
        return _tuples(self._run(self.dialect.views(self.schema, part), "searching views"))

    def get_table_metadata(self, table_name: str) -> Rows:
        """Describe the columns of a table in the write schema (HANA: the user's schema).

        Parameters
        ----------
        table_name : str
            Exact name.

        Returns
        -------
        rows : list of tuple
        headers : list of str
            As :meth:`get_view_metadata`.
        """
        name = _check_name(table_name, "table_name")
        return _tuples(self._run(self.dialect.columns(name, self.write_schema, "table"),
                                 f"describing table {name!r}"))

    def get_user_tables(self) -> Rows:
        """List the tables of the write schema (HANA: the user's own Open SQL schema).

        Returns
        -------
        rows : list of tuple
        headers : list of str
            ``TABLE_NAME, SCHEMA_NAME, TABLE_TYPE, COMMENTS, CREATE_TIME`` (fedml-aws's
            columns of HANA's ``TABLES``; NULL where the engine keeps no such information).
        """
        return _tuples(self._run(self.dialect.tables(self.write_schema), "listing tables"))
