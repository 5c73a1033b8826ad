"""Records and mini-batches of one input file, as Batch Transform cuts them.

``SplitType`` says what a record is: ``None`` makes the whole file one record (one
request), ``Line`` makes each line one.  ``BatchStrategy`` says how records travel:
``SingleRecord`` one per request, ``MultiRecord`` as many as fit in ``MaxPayloadInMB``.
A mini-batch never holds records of two files (each file is cut on its own), and a
record bigger than the limit fails its file.

Exact sizes: the limit is ``MaxPayloadInMB * 2**20`` bytes of request body (what the
SDK's local mode uses; the service's MB is not documented), and a body is the records'
bytes, each line ending in one ``\\n``.  ``MaxPayloadInMB=0`` means no limit (the service
streams such a body with chunked encoding).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

__all__ = ["MiniBatch", "Record", "RecordError", "mini_batches", "payload_limit", "split_records"]

_MB = 1 << 20


class RecordError(Exception):
    """A record (or a whole file) cannot be sent: it is too big, or the file is unreadable.

    ``record`` is the 1-based line number (0 for the whole file).
    """

    def __init__(self, message: str, record: int = 0) -> None:
        super().__init__(message)
        self.record = record


class Record(NamedTuple):
    """One record: its bytes (a line keeps its ``\\n``) and its 1-based line number.

    A named tuple: a file has millions of them, and a tuple is the cheapest to build.
    """

    data: bytes
    line: int


@dataclass(frozen=True)
class MiniBatch:
    """The records of one request, in file order."""

    records: tuple[Record, ...]

    @property
    def body(self) -> bytes:
        return b"".join(record.data for record in self.records)

    @property
    def first_line(self) -> int:
        return self.records[0].line

    @property
    def last_line(self) -> int:
        return self.records[-1].line

    def where(self) -> str:
        """``record 3`` or ``records 3-9`` (line numbers), for messages."""
        if self.first_line == 0:
            return "the whole file"
        if len(self.records) == 1:
            return f"record {self.first_line} (line {self.first_line})"
        return f"records {self.first_line}-{self.last_line} (lines)"


def payload_limit(max_payload_mb: int) -> int | None:
    """The body size limit in bytes for ``MaxPayloadInMB`` (``None``: no limit)."""
    return None if max_payload_mb == 0 else max_payload_mb * _MB


def open_input(stream: BinaryIO, compression: str) -> BinaryIO:
    """The decompressed byte stream of an input file (``Gzip`` or ``None``)."""
    if compression == "Gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def split_records(stream: BinaryIO, split_type: str) -> Iterator[Record]:
    """Yield the records of ``stream`` for ``SplitType`` ``None`` or ``Line``.

    Blank lines are no records (a file's final newline makes none).  A last line without
    a newline gets one, so every record of a body ends the same way.

    Raises
    ------
    RecordError
        When the stream cannot be read (a corrupt gzip file, say).
    """
    try:
        if split_type == "None":
            data = stream.read()
            if data:  # an empty file sends nothing (and gets an empty .out)
                yield Record(data, 0)
            return
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            yield Record(line if line.endswith(b"\n") else line + b"\n", number)
    except (OSError, EOFError, zlib.error) as exc:
        raise RecordError(f"cannot read the file: {exc}") from exc


def mini_batches(
    records: Iterable[Record], strategy: str, limit: int | None
) -> Iterator[MiniBatch]:
    """Pack ``records`` into request bodies of at most ``limit`` bytes.

    Parameters
    ----------
    records : iterable of Record
        One file's records, in order.
    strategy : {'SingleRecord', 'MultiRecord'}
        One record per body, or as many as fit.
    limit : int or None
        The body limit in bytes; ``None`` for none.

    Raises
    ------
    RecordError
        Naming the first record that alone is larger than ``limit``.
    """
    pending: list[Record] = []
    size = 0
    for record in records:
        length = len(record.data)
        if limit is not None and length > limit:
            what = "the file" if record.line == 0 else f"record {record.line} (line {record.line})"
            raise RecordError(
                f"{what} is {length} bytes, more than MaxPayloadInMB allows ({limit} bytes); "
                + (
                    "split the file into records with split_type='Line', or raise max_payload"
                    if record.line == 0
                    else "raise max_payload (at most 100) or make the record smaller"
                ),
                record.line,
            )
        if strategy == "SingleRecord":
            yield MiniBatch((record,))
            continue
        if pending and limit is not None and size + length > limit:
            yield MiniBatch(tuple(pending))
            pending, size = [], 0
        pending.append(record)
        size += length
    if pending:
        yield MiniBatch(tuple(pending))
