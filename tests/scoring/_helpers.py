"""Shared helpers: input tables, what a target holds, leftover endpoints."""

from __future__ import annotations

import pandas as pd

from fedsage.data import DbConnection
from fedsage.serving import endpoints


def make_table(db: DbConnection, name: str, data: pd.DataFrame) -> None:
    """Create ``name`` with ``data``'s columns (fedml-aws adds INSERTED_AT) and fill it."""
    columns = ", ".join(
        f"{db.dialect.quote(c)} {'BIGINT' if data[c].dtype.kind in 'iu' else 'DOUBLE PRECISION'}"
        for c in data.columns
    )
    db.create_table(f"CREATE TABLE {db.dialect.qualified(name, db.write_schema)} ({columns})")
    db.insert_into_table(name, data)


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
