"""PostgreSQL to Arrow through ADBC: ``COPY ... (FORMAT binary)`` decoded in C++.

The ADBC PostgreSQL driver (``adbc-driver-postgresql``) reads a query with
``COPY (query) TO STDOUT (FORMAT binary)`` and decodes the rows into Arrow arrays in
native code, so neither the server nor Python formats or parses text per value.  It
is used for Arrow batches (and so for Parquet channels) when the driver is installed;
:mod:`fedsage.data.dialects.postgresql` falls back to parsing a CSV ``COPY`` stream
otherwise.

Queries reach this module checked by the server (see
:mod:`fedsage.data.dialects.postgresql`), with their parameters bound into the text.

The result keeps the schema the CSV path produces, taken from the query's type OIDs:
columns the driver decodes natively are read as they are; NUMERIC is read as text and
cast on the client (``decimal128(p, s)`` or ``float64``), OID as ``int8``, and every
other type (json, uuid, arrays, intervals, ...) as its text form, as the CSV path does.
The ADBC session gets the same credentials (taken from the live psycopg connection),
the same ``search_path``, and is read-only.

The session is driven through ``adbc_driver_manager``'s low-level API (database,
connection, statement) rather than its DB-API module: ``adbc_driver_manager.dbapi``
imports ``pyarrow.dataset`` and with it pandas, about half a second per export.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .base import rebatch

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AdbcSession", "adbc_available", "adbc_query", "conninfo", "iter_adbc"]

# OIDs whose ADBC decoding gives the type fedsage's schema already uses.
_NATIVE_OIDS = frozenset({16, 20, 21, 23, 700, 701, 25, 1043, 1042, 19, 1082, 1114, 1184})
_OID, _NUMERIC = 26, 1700


def adbc_available() -> bool:
    """Whether ``adbc_driver_postgresql`` can be imported."""
    return importlib.util.find_spec("adbc_driver_postgresql") is not None


def conninfo(conn: Any) -> str:
    """A libpq connection string for a second session with ``conn``'s credentials."""
    from psycopg.conninfo import make_conninfo

    options = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info
               if o.val is not None}
    return make_conninfo("", **options)


def _select_list(oids: Sequence[int]) -> str:
    """``c0, c1::text, ...``: native columns as they are, the rest in a decodable type."""
    items = []
    for i, oid in enumerate(oids):
        if oid in _NATIVE_OIDS:
            items.append(f"c{i}")
        elif oid == _OID:
            items.append(f"c{i}::int8")
        else:
            items.append(f"c{i}::text")
    return ", ".join(items)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast ``batch`` column by column to ``schema`` (names by position)."""
    import pyarrow as pa

    arrays = []
    for column, field in zip(batch.columns, schema, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if column.type != field.type:
            import pyarrow.compute as pc  # only when a column needs a cast

            column = pc.cast(column, field.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _run(connection: Any, sql: str) -> None:
    """Run one statement whose result is not needed on an ADBC connection."""
    import adbc_driver_manager as adbm

    with adbm.AdbcStatement(connection) as statement:
        statement.set_sql_query(sql)
        statement.execute_update()


def adbc_query(sql: str, oids: Sequence[int]) -> str:
    """``sql`` wrapped so every column comes back in a type :func:`_conform` can cast."""
    # Positional aliases: result names may repeat or need quoting.  The newlines end a
    # trailing ``--`` comment of the (server-checked) query.
    aliases = ", ".join(f"c{i}" for i in range(len(oids)))
    return f"SELECT {_select_list(oids)} FROM (\n{sql}\n) AS fedsage_q({aliases})"


class AdbcSession:
    """An ADBC PostgreSQL session (its own connection) that reads queries as Arrow.

    Parameters
    ----------
    conninfo : str
        The libpq connection string.
    setup : sequence of str
        Statements to run first (read-only mode, ``search_path``, a snapshot, ...).
    """

    def __init__(self, conninfo: str, setup: Sequence[str]) -> None:
        import adbc_driver_manager as adbm
        import adbc_driver_postgresql

        self._database = adbc_driver_postgresql.connect(conninfo)
        try:
            # Low-level ADBC connections start in autocommit mode.
            self._session = adbm.AdbcConnection(self._database)
            try:
                for statement in setup:
                    _run(self._session, statement)
            except BaseException:
                self._session.close()
                raise
        except BaseException:
            self._database.close()
            raise

    def stream(self, query: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Yield the rows of ``query`` (from :func:`adbc_query`) as batches of ``schema``."""
        import adbc_driver_manager as adbm
        from adbc_driver_manager._reader import AdbcRecordBatchReader

        with adbm.AdbcStatement(self._session) as statement:
            statement.set_sql_query(query)
            stream, _ = statement.execute_query()
            reader = AdbcRecordBatchReader._import_from_c(stream.address)
            try:
                for block in reader:
                    yield _conform(block, schema)
            finally:
                reader.close()

    def read(self, query: str, schema: pa.Schema) -> list[pa.RecordBatch]:
        """All rows of ``query`` as a list of batches (one range of a parallel read)."""
        return list(self.stream(query, schema))

    def close(self) -> None:
        """Close the connection."""
        self._session.close()
        self._database.close()


def iter_adbc(conn: Any, sql: str, schema: pa.Schema, oids: Sequence[int],
              batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``sql`` as batches of ``schema``, read through ADBC.

    Parameters
    ----------
    conn : psycopg.Connection
        The live session: its credentials and ``search_path`` are reused.
    sql : str
        One read-only query the server has checked, its parameters already bound into
        it (ADBC uses ``$n`` placeholders, fedsage's callers psycopg's).
    schema : pyarrow.Schema
        The result schema (from the type OIDs), which every batch gets.
    oids : sequence of int
        The type OID of each result column.
    batch_rows : int
        The most rows per batch.

    Yields
    ------
    pyarrow.RecordBatch
        At least one (possibly empty) batch.
    """
    from psycopg import ClientCursor

    quoting = ClientCursor(conn)
    try:
        search_path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
        set_path = quoting.mogrify("SELECT set_config('search_path', %s, false)", [search_path])
    finally:
        quoting.close()
    session = AdbcSession(conninfo(conn), ["SET default_transaction_read_only = on", set_path])
    try:
        yield from rebatch(session.stream(adbc_query(sql, oids), schema), batch_rows, schema)
    finally:
        session.close()
