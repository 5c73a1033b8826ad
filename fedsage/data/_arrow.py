"""Turn DB-API rows into Arrow record batches with one schema for the whole result.

Used by engines without a columnar API (SQLite, SAP HANA's hdbcli).  The first batch
decides the schema: decimals become ``decimal128(38, scale)``, columns that are
entirely NULL in the first batch become strings; later batches are converted to that
schema (values that do not fit raise :class:`~fedsage.errors.DataError`).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..errors import DataError

__all__ = ["empty_batch", "rows_to_batch"]


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A batch without rows of ``schema``.

    Built from ``pa.nulls(0, type)``: ``RecordBatch.from_pylist([])``, ``pa.array([])``
    and ``Schema.empty_table()`` import pandas when it is installed (about a second and
    40 MB the first time), which a streaming read of an empty result never needs.
    """
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def _decimal_scale(values: Sequence[Any]) -> int:
    scale = 0
    for value in values:
        if isinstance(value, decimal.Decimal):
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int):
                scale = max(scale, -exponent)
    return min(scale, 37)


def _infer(values: Sequence[Any]) -> pa.Array:
    sample = next((v for v in values if v is not None), None)
    if sample is None:
        return pa.array(values, type=pa.string())
    if isinstance(sample, decimal.Decimal):
        return pa.array(values, type=pa.decimal128(38, _decimal_scale(values)))
    if hasattr(sample, "read") and not isinstance(sample, (str, bytes)):  # a driver LOB
        values = [None if v is None else v.read() for v in values]
    return pa.array(values)


def rows_to_batch(rows: Sequence[Any], names: Sequence[str],
                  schema: pa.Schema | None) -> pa.RecordBatch:
    """Convert DB-API rows to a record batch.

    Parameters
    ----------
    rows : sequence
        Rows as returned by ``fetchmany`` (tuples or driver row objects).
    names : sequence of str
        Column names, in order.
    schema : pyarrow.Schema or None
        The schema decided by the first batch; ``None`` for the first batch.

    Returns
    -------
    pyarrow.RecordBatch

    Raises
    ------
    DataError
        If a value does not fit the column type decided by the first batch.
    """
    width = len(names)
    columns: list[Sequence[Any]] = (
        list(zip(*(tuple(r) for r in rows), strict=True)) if rows else [()] * width
    )
    if schema is None:
        arrays = [_infer(list(col)) for col in columns]
        return pa.RecordBatch.from_arrays(arrays, names=list(names))
    arrays = []
    for col, field in zip(columns, schema, strict=True):
        values = list(col)
        if pa.types.is_string(field.type):
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            raise DataError(
                f"column {field.name!r} changed type mid-result ({field.type} in the first "
                f"batch): {exc}; cast it in the query (CAST(... AS ...)) to fix its type"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
