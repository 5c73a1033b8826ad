"""input_filter -> model -> join_source='Input' -> output_filter, per record, CSV and JSON."""

from __future__ import annotations

from typing import Any

import pytest

from fedsage.errors import ConfigurationError
from fedsage.scoring.data_processing import DataProcessing, ProcessingError


def _dp(**settings: Any) -> DataProcessing:
    base: dict[str, Any] = {
        "input_filter": None, "output_filter": None, "join_source": None,
        "content_type": "text/csv", "accept": "text/csv",
        "split_type": "Line", "assemble_with": "Line",
    }  # fmt: skip
    base.update(settings)
    return DataProcessing.from_settings(**base)


def test_nothing_asked_is_inactive_and_checks_nothing() -> None:
    dp = _dp(content_type="application/x-npy", split_type="None", assemble_with="None")
    assert not dp.active


def test_csv_input_filter_drops_the_id_column() -> None:
    dp = _dp(input_filter="$[1:]")
    assert dp.filters_input and not dp.per_record_output
    assert dp.filter_input(b"id7,1.5,2.5\n") == b"1.5,2.5\n"
    assert dp.filter_input(b'"a,b",1\n') == b"1\n"


def test_csv_join_appends_the_answer_exactly() -> None:
    dp = _dp(join_source="Input")
    assert dp.finish(b"1,2,3\n", b"1", "text/csv") == b"1,2,3,1"  # the documented example


def test_csv_filter_join_filter_keeps_id_and_prediction() -> None:
    dp = _dp(input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]")
    assert dp.filter_input(b"id7,1.5,2.5\n") == b"1.5,2.5\n"
    assert dp.finish(b"id7,1.5,2.5\n", b"0", "text/csv") == b"id7,0"


def test_csv_output_filter_out_of_range_is_an_error() -> None:
    dp = _dp(output_filter="$[3]")
    with pytest.raises(ProcessingError, match=r"output_filter .* index 3 is out of range"):
        dp.finish(b"1,2\n", b"0", "text/csv")


def test_json_object_gains_sagemaker_output() -> None:
    dp = _dp(content_type="application/jsonlines", accept="application/jsonlines",
             join_source="Input")  # fmt: skip
    joined = dp.finish(
        b'{"id":1,"SageMakerOutput":"old","x":[1,2]}\n', b"[0]", "application/jsonlines"
    )
    assert joined == b'{"id":1,"SageMakerOutput":[0],"x":[1,2]}'


def test_json_non_object_is_wrapped() -> None:
    dp = _dp(content_type="application/json", accept="application/json", join_source="Input",
             split_type="Line", assemble_with="None")  # fmt: skip
    joined = dp.finish(b"[1,2]\n", b"0.5", "application/json")
    assert joined == b'{"SageMakerInput":[1,2],"SageMakerOutput":0.5}'


def test_json_filters_by_name() -> None:
    dp = _dp(content_type="application/jsonlines", accept="application/jsonlines",
             input_filter="$.features", join_source="Input",
             output_filter="$['id','SageMakerOutput']")  # fmt: skip
    record = b'{"id":4,"features":[1,2]}\n'
    assert dp.filter_input(record) == b"[1,2]\n"
    assert dp.finish(record, b"1", "application/jsonlines") == b'{"id":4,"SageMakerOutput":1}'
    with pytest.raises(ProcessingError, match=r"input_filter .* no key 'features'"):
        dp.filter_input(b'{"id":5}\n')


def test_answers_are_paired_with_their_records() -> None:
    dp = _dp(join_source="Input")
    assert dp.split_answer(b"0\n1\n1\n", "text/csv", 3) == [b"0", b"1", b"1"]
    assert dp.split_answer(b"[0, 1, 1]", "application/json", 3) == [b"0", b"1", b"1"]
    assert dp.split_answer(b"[0.5]", "application/json", 1) == [b"0.5"]
    assert dp.split_answer(b'{"a": 1}', "application/json", 1) == [b'{"a":1}']
    assert dp.split_answer(b'{"a":1}\n{"a":2}\n', "application/json", 2) == [b'{"a":1}', b'{"a":2}']
    with pytest.raises(ProcessingError, match="answered 2 lines for 3 records"):
        dp.split_answer(b"0\n1\n", "text/csv", 3)
    with pytest.raises(ProcessingError, match="answered 'application/x-npy'"):
        dp.split_answer(b"\x93NUMPY", "application/x-npy", 1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"join_source": "Output"}, "join_source parameter of transform must be 'Input' or 'None'"),
        ({"join_source": "Input", "content_type": "application/x-npy"}, "need content_type"),
        ({"join_source": "Input", "content_type": None}, "need content_type"),
        ({"input_filter": "$[1:]", "accept": "application/x-npy"}, "need accept"),
        ({"join_source": "Input", "split_type": "None"}, "split_type='Line'"),
        ({"join_source": "Input", "assemble_with": "None"}, "assemble_with='Line'"),
        ({"input_filter": "$.features"}, "names keys, but a CSV row is an array"),
        ({"output_filter": "$.a", "join_source": "Input"}, "names keys, but the output is CSV"),
        ({"join_source": "Input", "accept": "application/json"}, "differ"),
        ({"input_filter": "$[1:"}, "closing"),
    ],
)
def test_bad_combinations_are_refused_up_front(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _dp(**settings)


def test_quoted_and_plain_csv_rows_give_the_same_fields() -> None:
    dp = _dp(input_filter="$[1:]", join_source="Input", output_filter="$[0,2,-1]")
    assert dp.filter_input(b"a,b,c\n") == b"b,c\n"
    assert dp.filter_input(b'a,"b,1",c\n') == b'"b,1",c\n'  # quoting kept where needed
    assert dp.filter_input(b'"a",b,c\n') == b"b,c\n"  # and dropped where not
    assert dp.finish(b"a,b,c\n", b"9", "text/csv") == b"a,c,9"
    assert dp.finish(b'a,b,"c ""x"""\n', b"9", "text/csv") == b'a,"c ""x""",9'
