"""Batch Transform's data processing: ``input_filter``, ``join_source`` and ``output_filter``.

Per record: the input filter picks what the model sees, the model answers, the answer
is joined with the original (unfiltered) record, and the output filter picks what is
written.  Only CSV and JSON take part: ``text/csv``, ``application/json`` and
``application/jsonlines``.  A CSV row is the JSON array of its fields (RFC 4180), so a
CSV join appends the answer's fields (``1,2,3`` + ``1`` -> ``1,2,3,1``); a JSON object
gains the key ``SageMakerOutput`` (replacing one of that name), any other JSON value is
wrapped as ``{"SageMakerInput": ..., "SageMakerOutput": ...}``.

fedsage pairs the answer to a mini-batch of N records with its records this way (the
service documents no rule): N lines of a CSV or JSON Lines answer, or the N elements of
a JSON array answer (the scikit-learn image answers one array per mini-batch), else the
whole answer when N is 1; any other count fails the file, naming the records.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .jsonpath import JsonPath, PathError, parse_path

__all__ = ["DataProcessing", "ProcessingError", "family"]

CSV = "csv"
JSON = "json"
_FAMILIES = {"text/csv": CSV, "application/json": JSON, "application/jsonlines": JSON}


class ProcessingError(Exception):
    """A record or an answer does not fit the filters or the join."""


@functools.lru_cache(maxsize=64)
def family(content_type: str | None) -> str | None:
    """``csv``, ``json`` or ``None`` for a content type (parameters ignored)."""
    if content_type is None:
        return None
    return _FAMILIES.get(content_type.split(";", 1)[0].strip().lower())


@dataclass(frozen=True)
class DataProcessing:
    """Checked data processing settings of one transform job.

    Build it with :meth:`from_settings`; ``active`` is False when nothing is asked.
    """

    input_filter: JsonPath | None = None
    output_filter: JsonPath | None = None
    join: bool = False
    input_family: str | None = None

    @property
    def active(self) -> bool:
        return self.filters_input or self.per_record_output

    @property
    def filters_input(self) -> bool:
        return self.input_filter is not None and not self.input_filter.is_identity

    @property
    def per_record_output(self) -> bool:
        """Whether answers are cut into one output per record (join or output filter)."""
        return self.join or (self.output_filter is not None and not self.output_filter.is_identity)

    @classmethod
    def from_settings(
        cls,
        *,
        input_filter: Any,
        output_filter: Any,
        join_source: Any,
        content_type: str | None,
        accept: str | None,
        split_type: str,
        assemble_with: str,
        caller: str = "transform",
    ) -> DataProcessing:
        """Check the three settings against each other and the job; nothing runs yet.

        Raises
        ------
        ConfigurationError
            For a filter outside the JSONPath subset, a content type other than CSV or
            JSON, CSV without ``split_type='Line'`` and ``assemble_with='Line'``, a name
            path on CSV, or a join across CSV and JSON.
        """
        if join_source not in (None, "None", "Input"):
            raise ConfigurationError(
                f"the join_source parameter of {caller} must be 'Input' or 'None'; got "
                f"{join_source!r} instead"
            )
        join = join_source == "Input"
        in_path = None if input_filter is None else parse_path(input_filter, "input_filter")
        out_path = None if output_filter is None else parse_path(output_filter, "output_filter")
        if in_path is None and out_path is None and not join:
            return cls()
        in_family = family(content_type)
        if in_family is None:
            raise ConfigurationError(
                f"input_filter, output_filter and join_source need content_type 'text/csv', "
                f"'application/json' or 'application/jsonlines'; got {content_type!r} "
                "(set content_type in transform)"
            )
        out_family = family(accept)
        if accept is not None and out_family is None:
            raise ConfigurationError(
                "input_filter, output_filter and join_source need accept 'text/csv', "
                f"'application/json' or 'application/jsonlines'; got {accept!r} (set accept "
                "in transformer)"
            )
        if CSV in (in_family, out_family) and (split_type != "Line" or assemble_with != "Line"):
            raise ConfigurationError(
                "data processing of CSV needs split_type='Line' (in transform) and "
                f"assemble_with='Line' (in transformer); got split_type={split_type!r}, "
                f"assemble_with={assemble_with!r}"
            )
        if in_family == CSV and in_path is not None and not in_path.index_only:
            raise ConfigurationError(
                f"the input_filter parameter {in_path.text!r} names keys, but a CSV row is an "
                "array: use indices such as '$[1:]' or '$[0,2]'"
            )
        if join and out_family is not None and out_family != in_family:
            raise ConfigurationError(
                f"join_source='Input' joins records with answers of the same kind; "
                f"content_type {content_type!r} and accept {accept!r} differ (fedsage joins "
                "CSV with CSV and JSON with JSON)"
            )
        outputs_csv = out_family == CSV or (join and in_family == CSV)
        if outputs_csv and out_path is not None and not out_path.index_only:
            raise ConfigurationError(
                f"the output_filter parameter {out_path.text!r} names keys, but the output is "
                "CSV (a row is an array): use indices such as '$[0,-1]'"
            )
        return cls(in_path, out_path, join, in_family)

    # -- per record --------------------------------------------------------------

    def filter_input(self, data: bytes) -> bytes:
        """The record the model sees (with its newline kept)."""
        if not self.filters_input:
            return data
        assert self.input_filter is not None
        try:
            value = self.input_filter.apply(_decode(data, self.input_family))
        except PathError as exc:
            raise ProcessingError(f"input_filter {exc}") from exc
        return _encode(value, self.input_family) + b"\n"

    def split_answer(self, body: bytes, content_type: str, count: int) -> list[bytes]:
        """Cut the answer to a mini-batch of ``count`` records into one output each.

        Raises
        ------
        ProcessingError
            When the answer's kind is not CSV or JSON, or its parts do not number ``count``.
        """
        kind = family(content_type)
        if kind is None:
            raise ProcessingError(
                f"the model answered {content_type!r}; data processing needs text/csv, "
                "application/json or application/jsonlines (set accept in transformer)"
            )
        text = body.decode("utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        if content_type.split(";", 1)[0].strip().lower() == "application/json":
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, list) and len(value) == count:
                return [_dumps(item) for item in value]
            if value is not None and count == 1:
                return [_dumps(value)]
        if len(lines) == count:
            return [line.encode("utf-8") for line in lines]
        if count == 1 and text.strip():
            return [text.strip().encode("utf-8")]
        raise ProcessingError(
            f"the model answered {len(lines)} lines for {count} records; with join_source or "
            "output_filter every record needs one answer (one line, or one element of a JSON "
            "array)"
        )

    def finish(self, original: bytes, answer: bytes, answer_type: str) -> bytes:
        """Join ``answer`` with ``original`` and apply the output filter (no newline).

        Raises
        ------
        ProcessingError
            When a record cannot be decoded or a path does not fit it.
        """
        out_family = family(answer_type) or self.input_family
        if self.join:
            if out_family != self.input_family:
                raise ProcessingError(
                    f"cannot join {self.input_family.upper() if self.input_family else ''} "
                    f"records with a {answer_type!r} answer; set accept to the content type"
                )
            if self.input_family == CSV:
                joined_text = original.rstrip(b"\r\n") + b"," + answer
                if self.output_filter is None or self.output_filter.is_identity:
                    return joined_text
                value = _decode(joined_text, CSV)
            else:
                record = _decode(original, JSON)
                output = _decode(answer, JSON)
                if isinstance(record, dict):
                    value = {**record, "SageMakerOutput": output}
                else:
                    value = {"SageMakerInput": record, "SageMakerOutput": output}
            kind = self.input_family
        else:
            kind = out_family
            value = _decode(answer, kind)
        if self.output_filter is not None:
            try:
                value = self.output_filter.apply(value)
            except PathError as exc:
                raise ProcessingError(f"output_filter {exc}") from exc
        return _encode(value, kind)


def _decode(data: bytes, kind: str | None) -> Any:
    if kind == CSV:
        line = data.rstrip(b"\r\n")
        if b'"' not in line:  # no quoting: the fields are the bytes between commas
            return line.split(b",")
        rows = list(csv.reader([line.decode("utf-8")]))
        return rows[0] if rows else []
    text = data.decode("utf-8").rstrip("\r\n")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProcessingError(f"not a JSON document: {text[:80]!r}") from exc


def _encode(value: Any, kind: str | None) -> bytes:
    if kind == CSV:
        fields = value if isinstance(value, list) else [value]
        if all(isinstance(field, bytes) for field in fields):  # unquoted fields, as read
            return b",".join(fields)
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            field.decode("utf-8") if isinstance(field, bytes) else field for field in fields
        )
        return out.getvalue().encode("utf-8")
    return _dumps(value)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
