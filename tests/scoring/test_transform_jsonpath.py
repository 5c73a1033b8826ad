"""The JSONPath subset of input_filter / output_filter, with every example of the reference."""

from __future__ import annotations

import pytest

from fedsage.errors import ConfigurationError
from fedsage.scoring.jsonpath import PathError, parse_path

ROW = ["id7", "1.5", "2.5", "3.5", "4.5", "5.5", "6.5"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", ROW),
        ("$[1:]", ROW[1:]),  # the documented "drop the ID column"
        ("$[0,5:]", [ROW[0], *ROW[5:]]),
        ("$[0,-1]", [ROW[0], ROW[-1]]),
        ("$[1:4]", ROW[1:5]),  # slices include their end, as the data processing page says
        ("$[:2]", ROW[:3]),
        ("$[-2:]", ROW[-2:]),
        ("$[0]", ROW[0]),
        ("$[-1]", ROW[-1]),
        ("$[*]", ROW),
        ("$[ 0 , 2 ]", [ROW[0], ROW[2]]),
    ],
)
def test_index_paths_on_a_csv_row(path: str, expected: object) -> None:
    parsed = parse_path(path, "input_filter")
    assert parsed.index_only
    assert parsed.apply(list(ROW)) == expected


RECORD = {"id": 3, "features": [1, 2, 3], "SageMakerOutput": {"label": 1}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.features", [1, 2, 3]),
        ("$['id','SageMakerOutput']", {"id": 3, "SageMakerOutput": {"label": 1}}),
        ('$["features"]', [1, 2, 3]),
        ("$.SageMakerOutput.label", 1),
        ("$.*", [3, [1, 2, 3], {"label": 1}]),
        ("$.features[0,-1]", [1, 3]),
        ("$.features[1:]", [2, 3]),
    ],
)
def test_name_paths_on_a_json_record(path: str, expected: object) -> None:
    parsed = parse_path(path, "output_filter")
    assert parsed.apply(RECORD) == expected
    assert not parsed.index_only or path == "$.*"


def test_identity() -> None:
    assert parse_path("$", "input_filter").is_identity
    assert not parse_path("$[0]", "input_filter").is_identity


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("$[7]", ROW, "index 7 is out of range for a record of 7 values"),
        ("$[-8]", ROW, "index -8 is out of range"),
        ("$[2:9]", ROW, "slice [2:9] is out of range"),
        ("$.missing", RECORD, "no key 'missing'"),
        ("$['id','nope']", RECORD, "no key 'nope'"),
        ("$.id", ROW, "a key needs an object, got an array"),
        ("$[0]", RECORD, "an index needs an array, got an object"),
        ("$.id.x", RECORD, "a key needs an object, got the value 3"),
    ],
)
def test_paths_that_do_not_fit_the_record(path: str, value: object, message: str) -> None:
    with pytest.raises(PathError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_path(path, "output_filter").apply(value)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("features", "must start with '\\$'"),
        ("$[", "closing"),
        ("$[]", "keys or indices"),
        ("$[0,]", "keys or indices"),
        ("$[a]", "quoted keys"),
        ("$[$.a]", "without nested paths"),
        ("$[1:2:3]", "quoted keys"),
        ("$['a',0]", "quoted keys"),
        ("$x", "expected '.', '.\\*' or '\\['"),
        ("$.", "a name after"),
        ("$[" + "0," * 40 + "0]", "at most 63"),
        (5, "must be a str"),
    ],
)
def test_paths_outside_the_subset_are_refused(path: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        parse_path(path, "input_filter")
    assert "input_filter" in str(info.value)
