"""Write Arrow batches to channel files: CSV without header and index, or Parquet.

Files are written through :func:`fedsage._home.atomic_write`, batch by batch, so
memory stays bounded by one batch and a reader never sees a half-written file.
pyarrow's CSV and Parquet modules are imported only by the writer that uses them
(and pyarrow not at all by a PostgreSQL CSV export, which ``COPY`` writes).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._home import atomic_write
from ..errors import ConfigurationError, DataError
from .dialects.base import Progress

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

__all__ = ["FILE_FORMATS", "check_format", "write_batches"]

logger = logging.getLogger(__name__)

FILE_FORMATS = ("csv", "parquet")


def check_format(file_format: str) -> str:
    """Return the normalised format or raise :class:`ConfigurationError`."""
    fmt = file_format.lower()
    if fmt not in FILE_FORMATS:
        raise ConfigurationError(
            f"the file_format parameter must be one of {', '.join(FILE_FORMATS)}; "
            f"got {file_format!r}"
        )
    return fmt


def _csv_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    # pandas' to_csv writes True/False; Arrow's CSV writer writes true/false.  Keep
    # fedml-aws's (pandas') spelling so scripts parse channels the same way.
    import pyarrow as pa

    if not any(pa.types.is_boolean(f.type) for f in batch.schema):
        return batch
    import pyarrow.compute

    arrays = [
        pa.compute.if_else(col, "True", "False") if pa.types.is_boolean(col.type) else col
        for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _dictionary_columns(schema: pa.Schema) -> list[str] | bool:
    # Dictionary-encode text only: on numbers and timestamps it rarely pays, and
    # trying it (then falling back to plain pages) made Parquet writing slower and the
    # files larger (docs/data.md).
    import pyarrow as pa

    names = [f.name for f in schema
             if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
             or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    return names or False


class _Pipeline:
    """Write batches on a thread while the caller reads the next one.

    Arrow's readers (ADBC, DuckDB) and writers release the GIL, so reading batch
    ``n + 1`` overlaps encoding batch ``n``.  At most :attr:`DEPTH` batches wait in
    the queue, so memory stays bounded.  A writer error stops the reading at the next
    :meth:`put` and is raised; leaving the ``with`` block waits for the writer and
    closes it (an exception there still closes it, and nothing is written after it).
    """

    DEPTH = 2
    _DONE = object()

    def __init__(self) -> None:
        self.writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        self._queue: queue.Queue[Any] = queue.Queue(self.DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fedsage-writer", daemon=True)

    def __enter__(self) -> _Pipeline:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (batch := self._queue.get()) is not self._DONE:
            if self._error is None:
                try:
                    assert self.writer is not None
                    self.writer.write_batch(batch)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def put(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` for writing (blocks while the queue is full)."""
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._queue.put(self._DONE)
        self._thread.join()
        if self.writer is not None:
            self.writer.close()
        if exc_type is None and self._error is not None:
            raise self._error


def _open_writer(handle: Any, schema: pa.Schema,
                 fmt: str) -> pacsv.CSVWriter | pq.ParquetWriter:
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(handle, schema,
                               write_options=pacsv.WriteOptions(include_header=False))
    import pyarrow.parquet as pq

    return pq.ParquetWriter(handle, schema, use_dictionary=_dictionary_columns(schema))


def write_batches(batches: Iterable[pa.RecordBatch], path: Path, file_format: str = "csv",
                  progress: Progress | None = None) -> int:
    """Write ``batches`` to ``path`` atomically; return the number of rows.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch
        Batches sharing one schema.
    path : pathlib.Path
        The file to create (replaced if it exists).
    file_format : {'csv', 'parquet'}, default='csv'
        CSV is written without header and without index, as fedml-aws's channels.
    progress : callable or None, default=None
        Called after each batch with the number of rows read so far (and handed
        to the writer thread); the last call has the total.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    ConfigurationError
        If ``file_format`` is not supported.
    DataError
        If a batch has another schema than the first.
    """
    fmt = check_format(file_format)
    rows = 0
    schema: pa.Schema | None = None
    with atomic_write(Path(path)) as handle, _Pipeline() as pipeline:
        for batch in batches:
            if fmt == "csv":
                batch = _csv_safe(batch)
            if pipeline.writer is None:
                pipeline.writer = _open_writer(handle, batch.schema, fmt)
            elif not batch.schema.equals(schema):
                # Arrow's CSV writer crashes the process on a mismatched batch.
                raise DataError(f"the result changed schema mid-stream: {schema} -> "
                                f"{batch.schema}")
            schema = batch.schema
            if batch.num_rows:
                pipeline.put(batch)
            rows += batch.num_rows
            if progress is not None:
                progress(rows)
    logger.info("wrote %d rows to %s (%s)", rows, path, fmt)
    return rows
