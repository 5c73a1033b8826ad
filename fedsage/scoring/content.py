"""Which request type batch scoring sends when the caller names none.

A model that keeps the scikit-learn image's default ``input_fn`` decodes ``text/csv`` to
``np.array(rows).squeeze()`` cast to float32, and ``application/x-npy`` to the array as
sent.  Parsing CSV text is most of a CSV run's time in the model server (about 350 ms per
50,000 rows of six doubles, against 4 ms for npy), so when nothing but that default
decoder reads the body, fedsage sends npy holding exactly the array CSV decoding would
give: every value parsed as a float64 (what ``float()`` makes of the CSV text), then cast
to float32, with the same squeeze.  The model sees the same array and answers the same
bytes.

Whether a script keeps the default is read from its source with :mod:`ast`, never by
importing it: a module that binds ``input_fn`` or ``transform_fn`` in any way (a ``def``,
an assignment, an import), or that could bind names by itself (``from x import *``,
``globals()``, ``setattr``, ``exec``), keeps ``text/csv``.
"""

from __future__ import annotations

import ast
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ContentChoice", "choose", "csv_like_matrix", "default_input_handler", "given"]

_CUSTOM_INPUT = ("input_fn", "transform_fn")
_DYNAMIC_CALLS = ("globals", "setattr", "exec", "eval", "__import__", "vars", "locals")


@dataclass(frozen=True)
class ContentChoice:
    """The request type of a scoring run and why it was chosen.

    Attributes
    ----------
    content_type : str
        What the requests carry.
    reason : str
        One sentence for the summary, the progress display and the docs.
    like_csv : bool
        npy bodies shaped and typed as the image's CSV decoding gives (float32, squeezed).
    """

    content_type: str
    reason: str
    like_csv: bool = False


def given(content_type: str) -> ContentChoice:
    """The caller's own choice (it always wins)."""
    return ContentChoice(content_type, "given by the caller")


def script_binds_input_handler(source: str) -> str | None:
    """Why a script's source may replace the default ``input_fn`` (None: it does not).

    Parameters
    ----------
    source : str
        The entry point's text.

    Returns
    -------
    str or None
        A short reason (``'it defines input_fn'``), or None when the script provably
        leaves both ``input_fn`` and ``transform_fn`` to the image.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return f"its source cannot be parsed ({type(exc).__name__})"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name in _CUSTOM_INPUT:
                return f"it defines {node.name}"
        elif isinstance(node, ast.Name) and node.id in _CUSTOM_INPUT:
            return f"it names {node.id}"
        elif isinstance(node, ast.alias):
            if node.name == "*":
                return "it imports names with *"
            bound = node.asname or node.name.split(".")[0]
            if bound in _CUSTOM_INPUT or node.name.rsplit(".", 1)[-1] in _CUSTOM_INPUT:
                return f"it imports {node.asname or node.name}"
        elif isinstance(node, ast.Attribute) and node.attr in _CUSTOM_INPUT:
            return f"it names {node.attr}"
        elif isinstance(node, ast.Constant) and node.value in _CUSTOM_INPUT:
            return f"it names {node.value!r} in a string"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _DYNAMIC_CALLS
        ):
            return f"it calls {node.func.id}()"
    return None


def _script_text(code: Path, program: str) -> str | None:
    """The entry point's text from a code folder or a ``sourcedir.tar.gz`` (None: absent)."""
    if code.is_dir():
        path = code / program
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    with tarfile.open(code, "r:*") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.lstrip("./") == program:
                data = archive.extractfile(member)
                if data is None:
                    return None
                with data:
                    return io.TextIOWrapper(data, encoding="utf-8", errors="replace").read()
    return None


def default_input_handler(
    code: Path | None, program: str | None, framework: str, builtin: bool = False
) -> str | None:
    """Why the model's server may not decode requests as the scikit-learn image does.

    Parameters
    ----------
    code : pathlib.Path or None
        The entry point's ``sourcedir.tar.gz`` or code folder.
    program : str or None
        The entry point's file name (``SAGEMAKER_PROGRAM``).
    framework : str
        The runtime's framework (``scikit-learn`` or ``xgboost``).
    builtin : bool, default=False
        Served by a built-in algorithm's handlers.

    Returns
    -------
    str or None
        A reason the default decoder may not be the one (None: it is).
    """
    if builtin:
        return "a built-in algorithm decodes its own requests"
    if framework != "scikit-learn":
        return f"the {framework} image's default input_fn does not take npy"
    if not program or code is None:
        return "the model's entry point is not known"
    name = Path(program).name
    try:
        text = _script_text(code, program)
    except (OSError, tarfile.TarError) as exc:
        return f"its entry point {name} cannot be read ({type(exc).__name__})"
    if text is None:
        return f"its entry point {name} is not in the model's code"
    why = script_binds_input_handler(text)
    return None if why is None else f"its entry point {name}: {why}"


def _numeric_kind(dtype: pa.DataType) -> bool:
    import pyarrow.types as t

    return bool(t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype))


def choose(schema: pa.Schema, features: list[str], handler_problem: str | None) -> ContentChoice:
    """The request type when the caller named none.

    Parameters
    ----------
    schema : pyarrow.Schema
        The input's schema.
    features : list of str
        The columns sent to the model.
    handler_problem : str or None
        What :func:`default_input_handler` said (None: the image's default decoder).

    Returns
    -------
    ContentChoice
        npy like CSV when the default decoder reads every request and every feature is a
        number CSV carries (integer, floating point, decimal); ``text/csv`` otherwise.
    """
    if handler_problem is not None:
        return ContentChoice(codec.CSV, f"the default, since {handler_problem}")
    for name in features:
        dtype = schema.field(name).type
        if not _numeric_kind(dtype):
            return ContentChoice(
                codec.CSV, f"the default, since feature column {name!r} is {dtype}"
            )
    return ContentChoice(
        codec.NPY,
        "chosen since the model keeps the default input_fn and every feature is a number "
        "(float32 npy, the array text/csv decodes to)",
        like_csv=True,
    )


def csv_like_matrix(batch: pa.RecordBatch) -> Any:
    """The array the image's default ``input_fn`` makes of ``batch`` sent as ``text/csv``.

    Each value as the float64 that ``float()`` parses from its CSV text (integers and
    decimals converted once, correctly rounded), cast to float32, squeezed as
    ``np.array(rows).squeeze()`` squeezes a one-row or one-column request.
    """
    import numpy as np
    import pyarrow as pa

    columns = []
    for column in batch.columns:
        if pa.types.is_decimal(column.type):
            # Through the decimal text, as float() reads CSV: Arrow's own decimal-to-double
            # cast is not guaranteed to round correctly.
            text = column.cast(pa.string()).to_numpy(zero_copy_only=False)
            columns.append(np.asarray(text, dtype=object).astype(np.float64))
        else:
            columns.append(codec.to_numpy(column).astype(np.float64, copy=False))
    if not columns:
        return np.empty((batch.num_rows, 0), dtype=np.float32)
    matrix = np.empty((batch.num_rows, len(columns)), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, as astype gives
        for index, values in enumerate(columns):
            matrix[:, index] = values  # float64 -> float32, as .astype(np.float32) rounds
    return matrix.squeeze()
