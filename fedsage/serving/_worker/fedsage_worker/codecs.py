"""The scikit-learn image's default codecs (CSV, JSON, npy) and content negotiation."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

import numpy as np

from .response import JSON, HttpError

CSV, NPY = "text/csv", "application/x-npy"
SUPPORTED = (JSON, CSV, NPY)
UTF8_TYPES = (JSON, CSV)

_CSV_FIELD_LIMIT = 131072  # csv.field_size_limit()'s default


def csv_rows(text: str) -> list[list[str]]:
    """Rows as ``csv.reader`` (the image's settings) splits them, faster for plain text.

    Text without quotes, carriage returns or NUL characters, and too short to exceed
    ``csv``'s field size limit, is split with ``str.split`` (same rows, an empty line
    gives ``[]`` as in ``csv.reader``); anything else goes through ``csv.reader``.
    """
    if len(text) <= _CSV_FIELD_LIMIT and '"' not in text and "\r" not in text and "\0" not in text:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line.split(",") if line else [] for line in lines]
    return list(
        csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True)
    )


def csv_to_numpy(text: str, dtype: Any = None) -> np.ndarray:
    """``np.array(rows).squeeze()`` of the CSV rows, as the image decodes CSV."""
    return np.array(csv_rows(text)).squeeze().astype(dtype)


def npy_to_numpy(body: bytes) -> np.ndarray:
    """Load an npy body without unpickling and without trusting its header's size."""
    stream = io.BytesIO(body)
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(stream)
    else:
        shape, _, dtype = fmt.read_array_header_2_0(stream)
    count = 1
    for n in shape:
        count *= int(n)
    if dtype.hasobject:
        raise ValueError("object arrays (pickles) are not accepted")
    if count * dtype.itemsize > len(body):
        raise ValueError("the npy header announces more data than the body holds")
    stream.seek(0)
    array: np.ndarray = np.load(stream, allow_pickle=False)
    return array


def decode(body: Any, content_type: str) -> np.ndarray:
    """Decode a request body as the scikit-learn image does (``HttpError`` 415 if unknown)."""
    if content_type == JSON:
        return np.array(json.loads(body))
    if content_type == CSV:
        return csv_to_numpy(body)
    if content_type == NPY:
        return npy_to_numpy(body)
    raise HttpError(
        415, f"unsupported content type {content_type!r}; use one of {', '.join(SUPPORTED)}"
    )


def _tolist(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return json.JSONEncoder().default(obj)


def array_to_csv(array: Any) -> str:
    """One value per line for 1-D, comma-separated rows for 2-D (``str`` of each value)."""
    array = np.asarray(array)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return "".join([str(v) + "\n" for v in array])
    return "".join([",".join([str(v) for v in row]) + "\n" for row in array])


def array_to_npy(array: Any) -> bytes:
    """``np.save`` bytes."""
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def array_to_json(value: Any) -> str:
    """``json.dumps(value, default=tolist)``: ``[1.0, 2.0]`` layout."""
    # An ndarray is written as its tolist() -- what json.dumps(default=tolist) writes --
    # without building a JSONEncoder per call.
    if type(value) is np.ndarray:
        return json.dumps(value.tolist())
    return json.dumps(value, default=_tolist)


ENCODERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    JSON: (array_to_json, JSON),
    CSV: (array_to_csv, "text/csv; charset=utf-8"),
    NPY: (array_to_npy, NPY),
}


def encode(prediction: Any, accept: str) -> tuple[Any, str]:
    """Encode a prediction for ``accept``; returns ``(body, content_type)``."""
    try:
        encoder, content_type = ENCODERS[accept]
    except KeyError:
        raise HttpError(
            406, f"unsupported accept type {accept!r}; use one of {', '.join(sorted(ENCODERS))}"
        ) from None
    return encoder(prediction), content_type


def media_type(value: str) -> str:
    """``'text/csv; charset=utf-8'`` -> ``'text/csv'`` (lower case, no parameters)."""
    return value.split(";", 1)[0].strip().lower()


def choose_accept(header: str | None, default: str) -> str:
    """The response type for an ``Accept`` header: the first supported type it names.

    A missing or empty header, and ``*/*``, mean ``default``.  Empty list elements
    (``a/b, , c/d``) are ignored, as RFC 9110 section 5.6.1 asks; a header that names
    no supported type gives its first type (the caller answers 406 unless a custom
    ``output_fn`` takes it).
    """
    if not header:
        return default
    first = None
    for item in header.split(","):
        kind = media_type(item)
        if not kind:
            continue
        if kind == "*/*":
            kind = default
        if kind in ENCODERS:
            return kind
        first = first or kind
    return first or default
