"""Arrow feature batches -> request bodies, and response bodies -> prediction columns.

Requests are encoded the way SageMaker's scikit-learn image decodes them: ``text/csv``
without a header (one line per row), ``application/json`` as a list of rows,
``application/x-npy`` as one 2-D array.  Responses in the same three types become one
column (``prediction``) or several (``prediction_0`` ... ``prediction_<n-1>``).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CONTENT_TYPES", "check_content_type", "decode", "encode", "media_type"]

CSV, JSON, NPY = "text/csv", "application/json", "application/x-npy"
CONTENT_TYPES = (CSV, JSON, NPY)


def media_type(value: str) -> str:
    """``'text/csv; charset=utf-8'`` -> ``'text/csv'``."""
    return value.split(";", 1)[0].strip().lower()


def check_content_type(value: Any, param: str, caller: str) -> str:
    """Return ``value`` if it is one of :data:`CONTENT_TYPES`."""
    if not isinstance(value, str) or media_type(value) not in CONTENT_TYPES:
        raise ConfigurationError(
            f"the {param} parameter of {caller} must be one of {', '.join(CONTENT_TYPES)}; "
            f"got {value!r} instead"
        )
    return media_type(value)


def _is_numeric(dtype: pa.DataType) -> bool:
    import pyarrow.types as t

    return bool(
        t.is_integer(dtype) or t.is_floating(dtype) or t.is_boolean(dtype) or t.is_decimal(dtype)
    )


def check_features(schema: pa.Schema, features: list[str], content_type: str) -> None:
    """Refuse feature columns the encoding cannot carry (text in CSV/npy, nested values).

    Raises
    ------
    ConfigurationError
        Naming the column, its type and the fix.
    """
    for name in features:
        dtype = schema.field(name).type
        if content_type in (CSV, NPY) and not _is_numeric(dtype):
            raise ConfigurationError(
                f"feature column {name!r} is {dtype}, not a number; {content_type} sends "
                "numbers to the model: cast it in the query (CAST(... AS DOUBLE)), leave it "
                "out with features=[...] or keep_columns=[...], or use "
                "content_type='application/json' for a model whose input_fn takes text"
            )


def to_numpy(column: pa.Array) -> Any:
    """``column`` as a numpy array, without pyarrow's pandas shim where it can.

    pyarrow's ``Array.to_numpy`` imports pandas when it is installed (a second and
    40 MB the first time); an integer or floating point column without NULLs (every
    feature column here: NULLs are refused first) is its data buffer, viewed as is.
    """
    import numpy as np
    import pyarrow as pa

    dtype = column.type
    kind = "i" if pa.types.is_signed_integer(dtype) else \
        "u" if pa.types.is_unsigned_integer(dtype) else \
        "f" if pa.types.is_floating(dtype) else None
    if kind is None or column.null_count:
        return column.to_numpy(zero_copy_only=False)
    width = dtype.bit_width // 8
    return np.frombuffer(column.buffers()[1], dtype=np.dtype(f"<{kind}{width}"),
                         count=len(column), offset=column.offset * width)


def from_numpy(values: Any) -> pa.Array:
    """A 1-D numpy array as an Arrow array, without pyarrow's pandas shim where it can.

    ``pa.array(ndarray)`` imports pandas when it is installed; integers and floats (the
    usual answers) are wrapped as a buffer instead, the same values and type.
    """
    import numpy as np
    import pyarrow as pa

    if values.dtype.kind in "iuf" and values.dtype.isnative:
        data = np.ascontiguousarray(values)
        return pa.Array.from_buffers(pa.from_numpy_dtype(data.dtype), len(data),
                                     [None, pa.py_buffer(data)])
    return pa.array(values)


def _matrix(batch: pa.RecordBatch) -> Any:
    """The batch's columns as one 2-D numpy array (float64 unless all are integers)."""
    import numpy as np
    import pyarrow as pa

    columns = []
    for column in batch.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        columns.append(to_numpy(column))
    if not columns:
        return np.empty((batch.num_rows, 0))
    return np.column_stack(columns)


def encode(batch: pa.RecordBatch, content_type: str, *, like_csv: bool = False) -> bytes:
    """Encode the feature columns of ``batch`` as one request body.

    Parameters
    ----------
    batch : pyarrow.RecordBatch
        The feature columns only, in the model's order.
    content_type : str
        One of :data:`CONTENT_TYPES`.
    like_csv : bool, default=False
        For npy: the array the image's default ``input_fn`` makes of the same rows sent
        as ``text/csv`` (float32, squeezed; see :mod:`fedsage.scoring.content`).

    Returns
    -------
    bytes
    """
    if content_type == CSV:
        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(
            batch, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed")
        )
        return sink.getvalue()
    if content_type == NPY:
        import numpy as np

        from .content import csv_like_matrix

        sink = io.BytesIO()
        np.save(sink, csv_like_matrix(batch) if like_csv else _matrix(batch), allow_pickle=False)
        return sink.getvalue()
    if all(_is_numeric(column.type) for column in batch.columns):
        return json.dumps(_matrix(batch).tolist()).encode("utf-8")
    rows = [list(row.values()) for row in batch.to_pylist()]
    return json.dumps(rows, default=str).encode("utf-8")


class DecodeError(ValueError):
    """A response body that is not one prediction per row."""


def decode(body: bytes, content_type: str, rows: int) -> list[pa.Array]:
    """Decode a response into prediction columns of ``rows`` values each.

    Parameters
    ----------
    body : bytes
        The response body.
    content_type : str
        The response's content type (parameters ignored).
    rows : int
        Rows in the request.

    Returns
    -------
    list of pyarrow.Array
        One array per output column.

    Raises
    ------
    DecodeError
        If the body cannot be decoded or does not hold one prediction per row.
    """
    import numpy as np
    import pyarrow as pa

    kind = media_type(content_type)
    if kind == CSV:
        import pyarrow.csv as pacsv

        if not body.strip():
            raise DecodeError(f"the model answered an empty CSV body for {rows} rows")
        try:
            table = pacsv.read_csv(
                io.BytesIO(body),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            )
        except pa.ArrowInvalid as exc:
            raise DecodeError(f"the model's CSV answer cannot be read: {exc}") from exc
        columns = [column.combine_chunks() for column in table.columns]
        found = table.num_rows
    else:
        if kind == JSON:
            try:
                value = json.loads(body)
            except ValueError as exc:
                raise DecodeError(f"the model's JSON answer cannot be read: {exc}") from exc
            if isinstance(value, dict) and "predictions" in value:
                value = value["predictions"]
            array = np.asarray(value)
        elif kind == NPY:
            try:
                array = np.load(io.BytesIO(body), allow_pickle=False)
            except ValueError as exc:
                raise DecodeError(f"the model's npy answer cannot be read: {exc}") from exc
        else:
            raise DecodeError(
                f"the model answered {content_type!r}; batch scoring reads "
                f"{', '.join(CONTENT_TYPES)} (set accept=...)"
            )
        if array.ndim == 0:
            array = array.reshape(1)
        if array.ndim > 2 or array.dtype.kind == "O":
            raise DecodeError(
                f"the model answered an array of shape {array.shape} ({array.dtype}); "
                "batch scoring writes one value or one flat row of values per input row"
            )
        found = array.shape[0]
        matrix = array.reshape(found, 1) if array.ndim == 1 else array
        columns = [from_numpy(matrix[:, i]) for i in range(matrix.shape[1])]
    if found != rows:
        raise DecodeError(f"the model answered {found} predictions for {rows} rows")
    return columns
