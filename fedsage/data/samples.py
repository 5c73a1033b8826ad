"""Sample data sets for the embedded warehouse, built only from installed packages.

``IRIS`` (species as strings), ``BREAST_CANCER`` (diagnosis as strings) come from the
files scikit-learn ships; ``SALES`` is synthetic and deterministic (a seeded NumPy
generator).  Loading is idempotent: tables are replaced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from .connection import DbConnection

__all__ = ["SAMPLES", "load_samples", "sample_frames"]

logger = logging.getLogger(__name__)

SAMPLES = ("IRIS", "BREAST_CANCER", "SALES")


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris()
    frame = pd.DataFrame(data.data, columns=["SEPAL_LENGTH", "SEPAL_WIDTH", "PETAL_LENGTH",
                                             "PETAL_WIDTH"])
    frame["SPECIES"] = [str(data.target_names[t]) for t in data.target]
    return frame


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.upper().replace(" ", "_") for n in data.feature_names]
    frame = pd.DataFrame(data.data, columns=names)
    frame["DIAGNOSIS"] = [str(data.target_names[t]) for t in data.target]
    return frame


def _sales(rows: int = 5_000) -> pd.DataFrame:
    rng = np.random.default_rng(20240501)
    regions = np.array(["EMEA", "APJ", "NA", "LATAM"])
    products = np.array(["tank", "pump", "valve", "sensor", "pipe"])
    price = rng.uniform(5, 500, rows).round(2)
    quantity = rng.integers(1, 50, rows)
    day = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, rows), unit="D")
    return pd.DataFrame({
        "ORDER_ID": np.arange(1, rows + 1), "ORDER_DATE": day,
        "REGION": regions[rng.integers(0, len(regions), rows)],
        "PRODUCT": products[rng.integers(0, len(products), rows)],
        "QUANTITY": quantity, "UNIT_PRICE": price,
        "REVENUE": (price * quantity).round(2),
    })


def sample_frames() -> dict[str, pd.DataFrame]:
    """Return the sample data sets as DataFrames, by table name.

    Returns
    -------
    dict of str to pandas.DataFrame
    """
    return {"IRIS": _iris(), "BREAST_CANCER": _breast_cancer(), "SALES": _sales()}


def load_samples(conn: DbConnection | None = None) -> list[str]:
    """Load the sample data sets into the embedded warehouse (or ``conn``).

    Parameters
    ----------
    conn : DbConnection or None, default=None
        Where to load them; default the embedded DuckDB warehouse.  Existing sample
        tables are replaced, so loading twice gives the same result.

    Returns
    -------
    list of str
        The table names loaded.

    Raises
    ------
    DataError
        If the tables cannot be written.
    """
    from .connection import DbConnection

    own = conn is None
    target = DbConnection.embedded() if conn is None else conn
    try:
        existing = {row[0] for row in target.get_user_tables()[0]}
        for name, frame in sample_frames().items():
            if name in existing:
                target.drop_table(name)
            target._run(target.dialect.create_table(name, target.write_schema, _columns(frame)),
                        f"creating sample {name}", fetch=False)
            ok = False
            try:
                target.dialect.insert_arrow(target._conn, name, target.write_schema,
                                            pa.Table.from_pandas(frame, preserve_index=False))
                ok = True
            finally:
                target._end(ok)
            logger.info("loaded sample %s (%d rows)", name, len(frame))
    finally:
        if own:
            target.close()
    return list(SAMPLES)


def _columns(frame: pd.DataFrame) -> list[tuple[str, Any]]:
    """The frame's columns as (name, SQLAlchemy type) pairs."""
    from sqlalchemy import TIMESTAMP, BigInteger, Double, String

    def sql_type(dtype: Any) -> Any:
        if pd.api.types.is_integer_dtype(dtype):
            return BigInteger()
        if pd.api.types.is_float_dtype(dtype):
            return Double()
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return TIMESTAMP()
        return String(64)

    return [(str(c), sql_type(t)) for c, t in frame.dtypes.items()]
