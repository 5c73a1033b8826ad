"""Shared helpers: input tables, what a target holds, leftover endpoints."""

from __future__ import annotations

import pandas as pd

from fedsage.data import DbConnection
from fedsage.serving import endpoints


def make_table(db: DbConnection, name: str, data: pd.DataFrame) -> None:
    """Create the table ``name`` holding ``data`` (through the data layer's writer)."""
    import pyarrow as pa

    from fedsage.data.writer import TableWriter

    table = pa.Table.from_pandas(data, preserve_index=False)
    with TableWriter(db, name, arrow_schema=table.schema) as writer:
        writer.write(table)
        writer.commit(expected_rows=len(data))


def table_names(db: DbConnection) -> set[str]:
    """Every table of the connection's schema (staging tables included)."""
    rows, headers = db.get_user_tables()
    index = [h.upper() for h in headers].index("TABLE_NAME") if headers else 0
    return {str(row[index]) for row in rows}


def read(db: DbConnection, name: str, order: str = "ID") -> pd.DataFrame:
    quoted = db.dialect.qualified(name, db.write_schema)
    return db.query(f"SELECT * FROM {quoted} ORDER BY {db.dialect.quote(order)}").to_pandas()


def scoring_endpoints() -> list[str]:
    """Temporary scoring endpoints still registered."""
    return [
        e["EndpointName"]
        for e in endpoints.list_endpoints()
        if e["EndpointName"].startswith("score-")
    ]
