"""The scikit-learn image's default codecs (CSV, JSON, npy) and content negotiation."""

from __future__ import annotations

import csv
import io
import json
from itertools import chain
from typing import Any, Callable

import numpy as np

from .response import JSON, HttpError

_orjson: Any
try:  # a faster JSON parser where the environment has one (fedsage's own has)
    import orjson as _orjson
except ImportError:  # a runtime's own environment: the standard library's parser
    _orjson = None

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


# Bodies shorter than this skip _numeric_csv, whose numpy calls cost more than they save
# there: one line of numbers takes _one_row, anything else the general path.
_FAST_MIN = 256
# numpy 1.x converts a nested list row by row, several times slower than a flat list;
# numpy 2 converts the nested list faster than flattening it first costs.
_FLATTEN_JSON = int(np.__version__.split(".")[0]) < 2


def csv_to_numpy(text: str, dtype: Any = None) -> np.ndarray:
    """``np.array(rows).squeeze().astype(dtype)`` of the CSV rows, as the image decodes CSV."""
    if dtype is None:
        array = _numeric_csv(text) if len(text) >= _FAST_MIN else _one_row(text)
        if array is not None:
            return array
    return np.array(csv_rows(text)).squeeze().astype(dtype)


def _plain_ascii(text: str) -> bool:
    """ASCII without quotes, CRs or NULs: text ``csv.reader`` cuts as ``str.split`` does."""
    return text.isascii() and '"' not in text and "\r" not in text and "\0" not in text


def _one_row(text: str) -> np.ndarray | None:
    """What ``csv_to_numpy(text)`` returns for one line of numbers; None: not sure.

    The short road of a one-row request: the fields of a line the general path would
    split with ``str.split`` (see ``_numeric_csv``) go through ``float()``, as numpy's
    cast of the strings would; anything else, and a field ``float()`` refuses, takes
    the general path.
    """
    line = text[:-1] if text.endswith("\n") else text
    if not line or "\n" in line or not _plain_ascii(line):
        return None
    try:
        values = [float(field) for field in line.split(",")]
    except ValueError:
        return None
    # squeeze() of the general path: one field is a 0-d array, a row a 1-d one
    return np.array(values if len(values) > 1 else values[0])


def _numeric_csv(text: str) -> np.ndarray | None:
    """What ``csv_to_numpy(text)`` returns, without the per-row lists; None: not sure.

    The general path builds a list per row and an array of strings, then converts every
    string with numpy's cast, which parses it as ``float()`` does.  Here the fields go
    straight through ``float()`` into one float64 array.  Only text the general path
    would split with ``str.split`` (ASCII, no quotes, CRs or NULs, every field within
    ``csv``'s size limit) whose lines all have the same number of fields is taken; for
    anything else, and for a field ``float()`` refuses, None sends the body down the
    general path, so every error (ragged rows, a header, NaN text, a BOM) is the one it
    always was.
    """
    if not _plain_ascii(text):
        return None
    raw = text.encode("ascii")
    size = len(raw) - 1 if raw.endswith(b"\n") else len(raw)  # csv drops one final newline
    data = np.frombuffer(raw, np.uint8, count=size)
    delimiters = np.flatnonzero((data == 44) | (data == 10))  # ',' and '\n'
    first = raw.find(b"\n", 0, size)
    width = raw.count(b",", 0, first if first >= 0 else size) + 1
    lines = len(delimiters) // width + 1
    if len(delimiters) != lines * width - 1 or raw.count(b"\n", 0, size) != lines - 1:
        return None
    if lines > 1 and not (data[delimiters[width - 1 :: width]] == 10).all():
        return None  # a line with another number of fields
    if size > _CSV_FIELD_LIMIT:
        edges = np.concatenate(([-1], delimiters, [size]))
        if int(np.diff(edges).max()) > _CSV_FIELD_LIMIT:
            return None  # let csv.reader refuse (or take) the long field
    fields = text[:size].replace("\n", ",").split(",")
    try:
        values = np.fromiter(map(float, fields), np.float64, len(fields))
    except ValueError:
        return None
    return values.reshape(lines, width).squeeze()


def json_to_numpy(text: Any) -> np.ndarray:
    """``np.array(json.loads(text))``, as the image decodes JSON.

    Where orjson is installed (fedsage's own environment, so the host runtime) it parses
    first, 6x faster on a 1,000-row body.  It gives the values ``json.loads`` gives
    except that it refuses NaN, Infinity, lone surrogates and a BOM, and turns integers
    beyond 64 bits into floats; so its array is kept only when it is of numbers with no
    magnitude an integer literal could have lost (>= 2**63), and anything else,
    including every error, is decided by ``json.loads`` as before.
    """
    if _orjson is not None:
        try:
            array = _to_array(_orjson.loads(text), text)
        except Exception:  # orjson refused the text, or numpy the value: as json says
            array = None
        if array is not None and (
            array.dtype.kind in "biu"
            or (array.dtype.kind == "f" and not (np.abs(array) >= 2.0**63).any())
        ):
            return array
    return _to_array(json.loads(text), text)


def _to_array(value: Any, text: Any) -> np.ndarray:
    """``np.array(value)`` of a parsed JSON body (``text``), flat first on numpy 1.x."""
    if (
        _FLATTEN_JSON
        and len(text) >= _FAST_MIN
        and type(value) is list
        and value
        and type(value[0]) is list
    ):
        # A list of equally long rows: one flat list converts several times faster
        # than the nested one and gives the same array (numpy finds the same dtype
        # from the same scalars); anything else takes numpy's general path.
        width = len(value[0])
        if width and set(map(type, value)) == {list} and set(map(len, value)) == {width}:
            try:
                flat = np.array(list(chain.from_iterable(value)))
            except Exception:  # a row holding lists (ragged): numpy's own answer below
                flat = None
            if flat is not None and flat.ndim == 1 and flat.dtype.kind in "biuf":
                return flat.reshape(len(value), width)
    return np.array(value)


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
        return json_to_numpy(body)
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
