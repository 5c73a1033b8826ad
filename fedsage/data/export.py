"""Write Arrow batches to channel files: CSV without header and index, or Parquet.

Files are written through :func:`fedsage._home.atomic_write`, batch by batch, so
memory stays bounded by one batch and a reader never sees a half-written file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._home import atomic_write
from ..errors import ConfigurationError
from .dialects.base import Progress

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
    if not any(pa.types.is_boolean(f.type) for f in batch.schema):
        return batch
    arrays = [
        pa.compute.if_else(col, "True", "False") if pa.types.is_boolean(col.type) else col
        for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


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
        Called with the number of rows written so far after each batch.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    ConfigurationError
        If ``file_format`` is not supported.
    """
    fmt = check_format(file_format)
    rows = 0
    with atomic_write(Path(path)) as handle:
        writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        try:
            for batch in batches:
                if fmt == "csv":
                    batch = _csv_safe(batch)
                if writer is None:
                    writer = (
                        pacsv.CSVWriter(handle, batch.schema,
                                        write_options=pacsv.WriteOptions(include_header=False))
                        if fmt == "csv" else pq.ParquetWriter(handle, batch.schema)
                    )
                if batch.num_rows:
                    writer.write_batch(batch)
                rows += batch.num_rows
                if progress is not None:
                    progress(rows)
        finally:
            if writer is not None:
                writer.close()
    logger.info("wrote %d rows to %s (%s)", rows, path, fmt)
    return rows
