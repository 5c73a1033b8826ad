"""The JSONPath subset of Batch Transform's ``input_filter`` and ``output_filter``.

SageMaker's data processing documentation names what a filter may hold: ``$`` (the
whole record), ``.name``, ``*``, ``['a','b']`` (one or more keys), ``[i,j]`` (indices,
negative ones count from the end) and ``[start:end]`` slices with either end left out.
Brackets hold no nested paths.  A CSV row is a JSON array of its fields, so CSV takes
index paths only.

Two choices follow the documentation where the service is not verified:

- a slice includes its end (``$[1:4]`` is the 2nd to the 5th column, as the data
  processing page says; Python's ``[1:4]`` would stop at the 4th);
- ``['a','b']`` with several keys gives an object holding those keys in that order, one
  key gives its value; several indices or any slice give an array, one index its element.

An index or key that is not there is an error (the service fails an output filter that
indexes past the end); :class:`PathError` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

__all__ = ["JsonPath", "PathError", "parse_path"]

#: SageMaker's limit on InputFilter / OutputFilter.
MAX_PATH_LENGTH = 63

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT = re.compile(r"-?\d+")
_QUOTED = re.compile(r"'([^'\\]*)'|\"([^\"\\]*)\"")


class PathError(Exception):
    """A path does not fit a record (a missing key, an index out of range)."""


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Keys:
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Wild:
    pass


@dataclass(frozen=True)
class _Slice:
    start: int | None
    end: int | None


@dataclass(frozen=True)
class _Indices:
    items: tuple[int | _Slice, ...]

    @property
    def single(self) -> bool:
        return len(self.items) == 1 and isinstance(self.items[0], int)


_Step = _Key | _Keys | _Wild | _Indices


@dataclass(frozen=True)
class JsonPath:
    """A parsed filter; :meth:`apply` selects from a decoded JSON value."""

    text: str
    steps: tuple[_Step, ...]

    @property
    def is_identity(self) -> bool:
        """Whether the path is ``$`` (it selects the whole record)."""
        return not self.steps

    @property
    def index_only(self) -> bool:
        """Whether every step indexes an array (what a CSV row allows)."""
        return all(isinstance(step, (_Indices, _Wild)) for step in self.steps)

    def apply(self, value: Any) -> Any:
        """Select from ``value``.

        Raises
        ------
        PathError
            When a key is missing, an index is out of range, or a step meets a value of
            the wrong kind (a key on an array, an index on an object).
        """
        for step in self.steps:
            value = _apply_step(step, value, self.text)
        return value


def _apply_step(step: _Step, value: Any, text: str) -> Any:
    if isinstance(step, _Wild):
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise PathError(f"{text}: '*' needs an object or an array, got {_kind(value)}")
    if isinstance(step, (_Key, _Keys)):
        if not isinstance(value, dict):
            raise PathError(f"{text}: a key needs an object, got {_kind(value)}")
        names = (step.name,) if isinstance(step, _Key) else step.names
        missing = [name for name in names if name not in value]
        if missing:
            raise PathError(f"{text}: the record has no key {missing[0]!r}")
        if isinstance(step, _Key) or len(names) == 1:
            return value[names[0]]
        return {name: value[name] for name in names}
    if not isinstance(value, list):
        raise PathError(f"{text}: an index needs an array, got {_kind(value)}")
    size = len(value)
    picked: list[Any] = []
    for item in step.items:
        if isinstance(item, int):
            index = item + size if item < 0 else item
            if not 0 <= index < size:
                raise PathError(
                    f"{text}: index {item} is out of range for a record of {size} values"
                )
            picked.append(value[index])
        else:
            start = 0 if item.start is None else item.start
            end = size - 1 if item.end is None else item.end
            start = start + size if start < 0 else start
            end = end + size if end < 0 else end
            if not (0 <= start < size and 0 <= end < size):
                raise PathError(
                    f"{text}: slice {_slice_text(item)} is out of range for a record of "
                    f"{size} values"
                )
            picked.extend(value[start : end + 1])
    return picked[0] if step.single else picked


def _slice_text(item: _Slice) -> str:
    start = "" if item.start is None else str(item.start)
    end = "" if item.end is None else str(item.end)
    return f"[{start}:{end}]"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"the value {value!r}"


def parse_path(text: Any, param: str) -> JsonPath:
    """Parse a filter of the subset above.

    Parameters
    ----------
    text : str
        The filter, such as ``$[1:]``, ``$.features`` or ``$['id','SageMakerOutput']``.
    param : str
        The parameter it came from, for the error message.

    Returns
    -------
    JsonPath

    Raises
    ------
    ConfigurationError
        For anything outside the subset, or a path longer than 63 characters.
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"the {param} parameter must be a str; got {text!r} instead")
    if len(text) > MAX_PATH_LENGTH:
        raise ConfigurationError(
            f"the {param} parameter {text!r} is {len(text)} characters long; SageMaker allows "
            f"at most {MAX_PATH_LENGTH}"
        )
    if not text.startswith("$"):
        raise ConfigurationError(
            f"the {param} parameter {text!r} is not a JSONPath: it must start with '$' "
            "(such as '$[1:]' or '$.features')"
        )
    steps: list[_Step] = []
    pos = 1
    while pos < len(text):
        char = text[pos]
        if text.startswith(".*", pos):
            steps.append(_Wild())
            pos += 2
        elif char == ".":
            match = _NAME.match(text, pos + 1)
            if match is None:
                raise _syntax(text, param, pos, "a name after '.'")
            steps.append(_Key(match.group()))
            pos = match.end()
        elif char == "[":
            end = text.find("]", pos)
            if end < 0:
                raise _syntax(text, param, pos, "a closing ']'")
            steps.append(_parse_brackets(text, param, pos, text[pos + 1 : end]))
            pos = end + 1
        else:
            raise _syntax(text, param, pos, "'.', '.*' or '['")
    return JsonPath(text, tuple(steps))


def _parse_brackets(text: str, param: str, pos: int, inner: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _Wild()
    parts = [part.strip() for part in inner.split(",")]
    if not inner or any(not part for part in parts):
        raise _syntax(text, param, pos, "keys or indices between the brackets")
    if all(_QUOTED.fullmatch(part) for part in parts):
        names = []
        for part in parts:
            quoted = _QUOTED.fullmatch(part)
            assert quoted is not None
            names.append(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
        return _Keys(tuple(names))
    items: list[int | _Slice] = []
    for part in parts:
        if _INT.fullmatch(part):
            items.append(int(part))
            continue
        if part.count(":") == 1:
            start, end = (side.strip() for side in part.split(":"))
            if (not start or _INT.fullmatch(start)) and (not end or _INT.fullmatch(end)):
                items.append(_Slice(int(start) if start else None, int(end) if end else None))
                continue
        raise _syntax(
            text, param, pos,
            "quoted keys ('a','b'), or indices and slices (0,-1,2:) without nested paths",
        )  # fmt: skip
    return _Indices(tuple(items))


def _syntax(text: str, param: str, pos: int, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"the {param} parameter {text!r} is not in SageMaker's JSONPath subset: expected "
        f"{expected} at position {pos}; see the data processing examples such as '$[1:]', "
        "'$[0,5:]', '$[0,-1]', '$.features', \"$['id','SageMakerOutput']\""
    )
