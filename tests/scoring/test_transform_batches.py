"""Records and mini-batches of one input file (SplitType, BatchStrategy, MaxPayloadInMB)."""

from __future__ import annotations

import gzip
import io

import pytest

from fedsage.scoring.batches import (
    RecordError,
    mini_batches,
    open_input,
    payload_limit,
    split_records,
)


def _records(data: bytes, split: str = "Line") -> list:
    return list(split_records(io.BytesIO(data), split))


def test_lines_are_records_with_their_line_numbers() -> None:
    records = _records(b"1,2\n\n3,4\r\n5,6")
    assert [(r.data, r.line) for r in records] == [(b"1,2\n", 1), (b"3,4\r\n", 3), (b"5,6\n", 4)]


def test_split_none_is_the_whole_file() -> None:
    records = _records(b"1,2\n3,4\n", "None")
    assert [(r.data, r.line) for r in records] == [(b"1,2\n3,4\n", 0)]


def test_multirecord_fills_each_body_up_to_the_exact_limit() -> None:
    records = _records(b"".join(b"%03d\n" % i for i in range(10)))  # 4 bytes each
    batches = list(mini_batches(records, "MultiRecord", 12))
    assert [len(b.records) for b in batches] == [3, 3, 3, 1]
    assert batches[0].body == b"000\n001\n002\n"
    assert batches[1].where() == "records 4-6 (lines)"
    assert all(len(b.body) <= 12 for b in batches)
    assert next(iter(mini_batches(records, "MultiRecord", None))).body.count(b"\n") == 10


def test_singlerecord_sends_one_record_per_body() -> None:
    batches = list(mini_batches(_records(b"a\nb\nc\n"), "SingleRecord", 100))
    assert [b.body for b in batches] == [b"a\n", b"b\n", b"c\n"]
    assert batches[1].where() == "record 2 (line 2)"


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_a_record_above_the_limit_fails_naming_it(strategy: str) -> None:
    records = _records(b"ab\n" + b"x" * 20 + b"\ncd\n")
    with pytest.raises(RecordError, match=r"record 2 .line 2. is 21 bytes, more than") as info:
        list(mini_batches(records, strategy, 10))
    assert info.value.record == 2


def test_a_whole_file_above_the_limit_says_to_split_it() -> None:
    with pytest.raises(RecordError, match="split_type='Line'"):
        list(mini_batches(_records(b"x" * 11, "None"), "MultiRecord", 10))


def test_payload_limit_is_mebibytes_and_zero_means_none() -> None:
    assert payload_limit(6) == 6 * 1024 * 1024
    assert payload_limit(0) is None


def test_gzip_input_is_decompressed_and_a_corrupt_one_fails() -> None:
    packed = gzip.compress(b"1\n2\n")
    stream = open_input(io.BytesIO(packed), "Gzip")
    assert [r.data for r in split_records(stream, "Line")] == [b"1\n", b"2\n"]
    broken = open_input(io.BytesIO(packed[:-6] + b"garbage"), "Gzip")
    with pytest.raises(RecordError, match="cannot read the file"):
        list(split_records(broken, "Line"))


def test_an_empty_file_has_no_records() -> None:
    assert _records(b"", "None") == []
    assert _records(b"\n\n", "Line") == []
