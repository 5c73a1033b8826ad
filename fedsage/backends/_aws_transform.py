"""aws mode's batch scoring: the input streamed to S3 as CSV parts, a SageMaker Batch
Transform job, the ``.out`` parts streamed back into the target in one commit.

The features of each part go to ``s3://<bucket>/<prefix>/<job>/batch-<run>/input/
part-NNNNN.csv`` (header-less CSV, SageMaker's ``text/csv`` with ``SplitType=Line``); the
keep columns of the same rows wait in a local Parquet spool file per part, so memory stays
flat.  The transform job (``MultiRecord``, ``AssembleWith=Line``, ``MaxPayloadInMB``,
``instance_count`` instances sharing the parts) writes ``part-NNNNN.csv.out`` beside each
input under ``output/``, one answer line per input line in input order; each is
downloaded, decoded, joined to its spooled keep columns and written through the data
layer's writer.  The S3 objects of the run are deleted at the end, whatever ends it.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, ScoringError
from ..scoring import codec
from ..scoring.engine import ScoringSummary, chunks, output_schema, select_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from ..scoring.engine import ScoringRequest
    from ..storage import ObjectStore

__all__ = ["PART_ROWS", "transform_through_s3"]

PART_ROWS = 1_000_000  # rows per S3 part: instances share parts, so more parts spread better


def _upload_parts(
    request: ScoringRequest, store: ObjectStore, input_prefix: str, spool: Path
) -> list[tuple[str, Path, int]]:
    """Write the input's features to S3 parts and its keep columns to local spool files."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..scoring.engine import check_nulls

    keep, features = select_columns(request.source.schema, request.plan)
    parts: list[tuple[str, Path, int]] = []
    rows_in = 0
    body: io.BytesIO | None = None
    kept: Any = None
    part_rows = 0

    def finish() -> None:
        nonlocal body, kept, part_rows
        if body is None:
            return
        key = f"{input_prefix}part-{len(parts):05d}.csv"
        body.seek(0)
        store.put_stream(key, body)
        kept.close()
        parts.append((key, spool / f"keep-{len(parts):05d}.parquet", part_rows))
        body, kept, part_rows = None, None, 0

    for batch in chunks(request.source.batches, request.plan.batch_rows):
        check_nulls(batch, features, rows_in)
        if body is None:
            body = io.BytesIO()
            keep_schema = pa.schema([request.source.schema.field(n) for n in keep])
            kept = pq.ParquetWriter(spool / f"keep-{len(parts):05d}.parquet", keep_schema)
        body.write(codec.encode(batch.select(features), codec.CSV))
        kept.write_batch(batch.select(keep))
        part_rows += batch.num_rows
        rows_in += batch.num_rows
        if part_rows >= PART_ROWS:
            finish()
    finish()
    return parts


def transform_through_s3(
    *,
    store: ObjectStore,
    prefix: str,
    model: Any,
    request: ScoringRequest,
    open_writer: Callable[[Any, pa.Schema, str], Any],
    model_name: str,
) -> ScoringSummary:
    """Score ``request`` with a SageMaker Batch Transform job of ``model`` (an SDK model).

    Raises
    ------
    ConfigurationError
        For a content type other than ``text/csv`` (parts are split by line).
    ScoringError
        If the job fails, or an ``.out`` part is missing or does not hold one answer per
        input line; the target is left as it was.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = request.plan
    if plan.content_type != codec.CSV:
        raise ConfigurationError(
            "in aws mode batch_transform sends text/csv parts split by line (SageMaker's "
            f"SplitType='Line'); content_type={plan.content_type!r} is local mode only"
        )
    began = time.monotonic()
    run = f"{prefix.rstrip('/')}/batch-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}/"
    input_prefix, output_prefix = run + "input/", run + "output/"
    keep = plan.keep_columns
    writer: Any = None
    schema: pa.Schema | None = None
    rows_in = 0
    ok = False
    try:
        with tempfile.TemporaryDirectory(prefix="fedsage-transform-") as tmp:
            spool = Path(tmp)
            parts = _upload_parts(request, store, input_prefix, spool)
            rows_in = sum(rows for _, _, rows in parts)
            if parts:
                transformer = model.transformer(
                    instance_count=request.instance_count,
                    instance_type=request.instance_type,
                    strategy="MultiRecord",
                    assemble_with="Line",
                    output_path=store.uri(output_prefix),
                    accept=plan.accept or plan.content_type,
                    max_payload=max(1, plan.max_payload // (1024 * 1024)),
                )
                transformer.transform(
                    store.uri(input_prefix), content_type=codec.CSV, split_type="Line",
                    wait=True, logs=False,
                )
            for index, (key, kept_path, rows) in enumerate(parts):
                name = key.rsplit("/", 1)[-1]
                out_key = f"{output_prefix}{name}.out"
                if not store.exists(out_key):
                    raise ScoringError(
                        f"the transform job wrote no {name}.out for input rows "
                        f"{_first_row(parts, index):,} to {_first_row(parts, index) + rows - 1:,}"
                    )
                local = store.download(out_key, spool / f"{name}.out")
                try:
                    columns = codec.decode(local.read_bytes(), plan.accept or codec.CSV, rows)
                except codec.DecodeError as exc:
                    first = _first_row(parts, index)
                    raise ScoringError(f"input rows {first:,} to {first + rows - 1:,}: {exc}") \
                        from exc
                local.unlink()
                kept = pq.read_table(kept_path)
                if schema is None:
                    schema = output_schema(request.source.schema, keep, columns,
                                           plan.prediction_column)
                    writer = open_writer(request.target, schema, plan.if_exists)
                arrays = [kept.column(n).combine_chunks() for n in keep] + [
                    column.cast(field.type)
                    for column, field in zip(columns, list(schema)[len(keep):], strict=True)
                ]
                writer.write(pa.RecordBatch.from_arrays(arrays, schema=schema))
                if request.progress is not None:
                    request.progress(writer.rows_written)
            if writer is None:
                schema = pa.schema([request.source.schema.field(n) for n in keep]
                                   + [pa.field(plan.prediction_column, pa.float64())])
                writer = open_writer(request.target, schema, plan.if_exists)
            if writer.rows_written != rows_in:
                raise ScoringError(f"read {rows_in:,} rows but wrote {writer.rows_written:,}; "
                                   "nothing was committed")
            written = int(writer.commit(expected_rows=rows_in))
            ok = True
    finally:
        if not ok and writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        with contextlib.suppress(Exception):
            store.delete_prefix(run)
    assert schema is not None
    return ScoringSummary(
        rows_in=rows_in, rows_written=written, seconds=time.monotonic() - began,
        target=str(request.target), columns=list(schema.names), model=model_name,
        requests=len(parts), content_type=codec.CSV,
        content_type_reason=request.plan.content_type_reason,
    )


def _first_row(parts: list[tuple[str, Path, int]], index: int) -> int:
    return 1 + sum(rows for _, _, rows in parts[:index])
