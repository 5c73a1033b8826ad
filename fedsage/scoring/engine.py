"""The scoring loop: batches in, requests to the model's server, predictions out, in order.

The calling thread reads the input and writes the output (database cursors stay in one
thread); a pool of ``workers + 1`` threads encodes, sends and decodes, so every server
worker has a request while the next one is on the wire.  At most ``workers + 1`` batches
are in flight, which keeps memory flat in the row count.  While the model server is still
starting (the client is a future), reading goes on ahead, up to
:data:`STARTUP_READ_AHEAD` bytes of batches, so the start overlaps the read.  Output goes
through the data layer's writers, which stage the rows and commit them in one step, or
abort and leave the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._html import summary_table
from ..errors import ConfigurationError, EndpointError, InvocationError, ScoringError
from . import codec
from .inputs import Input, Target

if TYPE_CHECKING:
    import pyarrow as pa

    from .model_server import ModelClient

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "PendingRequest",
    "Plan",
    "ScoringRequest",
    "ScoringSummary",
    "score",
]

DEFAULT_BATCH_ROWS = 50_000
MB = 1024 * 1024
#: Bytes of input batches read ahead while the model server starts (then ``workers + 1``
#: batches at most, as ever): enough to overlap a start of a few seconds with the read.
STARTUP_READ_AHEAD = 24 * MB


@dataclass
class Plan:
    """How to score: columns, encodings, sizes."""

    keep_columns: list[str] = field(default_factory=list)
    features: list[str] | None = None
    content_type: str = codec.CSV
    #: False when the caller named no content type (the backend may choose npy).
    content_type_given: bool = True
    #: Why ``content_type`` is used (for the summary and the progress display).
    content_type_reason: str = "given by the caller"
    #: npy bodies holding the array the image's CSV decoding gives (float32, squeezed).
    npy_like_csv: bool = False
    accept: str | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    max_payload: int = 6 * MB
    prediction_column: str = "prediction"
    if_exists: str = "fail"


@dataclass
class ScoringRequest:
    """Everything a backend needs to score, checked by the caller."""

    source: Input
    target: Target
    plan: Plan
    workers: int | None = None
    progress: Callable[[int], None] | None = None
    instance_count: int = 1
    instance_type: str | None = None


@dataclass
class PendingRequest:
    """A checked scoring call whose input is not opened yet (a backend opens it when it
    suits it: locally while the model server starts).

    Attributes
    ----------
    plan : Plan
        The checked arguments.
    workers : int or None
        Model server workers asked for.
    open : callable
        Opens the :class:`ScoringRequest` (reads the input's first batch); a context
        manager that closes the input after.
    """

    plan: Plan
    workers: int | None
    open: Callable[[], contextlib.AbstractContextManager[ScoringRequest]]


@dataclass
class ScoringSummary:
    """What a scoring run did.

    Attributes
    ----------
    rows_in : int
        Rows read from the input.
    rows_written : int
        Rows written to the target (equal to ``rows_in``: checked before the commit).
    seconds : float
        Wall time from the first read to the commit (the model server's start excluded).
    target : str
        The table or file written.
    columns : list of str
        The target's columns.
    model : str
        What scored (job or endpoint name).
    requests : int
        Requests sent to the model server.
    startup_seconds : float
        Seconds the temporary model server took to start (0 for an existing endpoint);
        the start overlaps the first reads, so it is not all added to :attr:`seconds`.
    content_type : str
        What the requests carried.
    content_type_reason : str
        Why: given by the caller, or chosen (npy for a model that keeps the image's
        default ``input_fn`` and numeric features; otherwise the default ``text/csv``
        and the reason).
    """

    rows_in: int
    rows_written: int
    seconds: float
    target: str
    columns: list[str]
    model: str = ""
    requests: int = 0
    startup_seconds: float = 0.0
    content_type: str = codec.CSV
    content_type_reason: str = ""

    @property
    def rows_per_second(self) -> float:
        """Rows scored per second of :attr:`seconds`."""
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"ScoringSummary(rows_in={self.rows_in}, rows_written={self.rows_written}, "
            f"seconds={self.seconds:.2f}, target={self.target!r}, "
            f"content_type={self.content_type!r})"
        )

    def _repr_html_(self) -> str:
        return summary_table(
            "Batch scoring",
            [
                ("Model", self.model),
                ("Target", self.target),
                ("Rows in", f"{self.rows_in:,}"),
                ("Rows written", f"{self.rows_written:,}"),
                ("Seconds", f"{self.seconds:.2f}"),
                ("Rows per second", f"{self.rows_per_second:,.0f}"),
                ("Requests", self.requests),
                ("Content type", f"{self.content_type} ({self.content_type_reason})"),
                ("Columns", ", ".join(self.columns)),
            ],
        )


def select_columns(schema: pa.Schema, plan: Plan) -> tuple[list[str], list[str]]:
    """Check ``keep_columns`` and ``features`` against the input; return both lists.

    Raises
    ------
    ConfigurationError
        Naming unknown columns (and the input's columns), overlaps, or no features.
    """
    names = list(schema.names)
    for param, wanted in (("keep_columns", plan.keep_columns), ("features", plan.features or [])):
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise ConfigurationError(
                f"the {param} parameter names columns the input does not have: "
                f"{', '.join(map(repr, unknown))}; the input's columns are "
                f"{', '.join(map(repr, names))} (names are case-sensitive)"
            )
    keep = list(plan.keep_columns)
    features = (
        list(plan.features) if plan.features is not None else [c for c in names if c not in keep]
    )
    if not features:
        raise ConfigurationError(
            "no feature columns are left for the model: every input column is in keep_columns; "
            "name the model's columns with features=[...]"
        )
    clash = [
        c for c in keep if c == plan.prediction_column or c.startswith(plan.prediction_column + "_")
    ]
    if clash:
        raise ConfigurationError(
            f"keep_columns {clash!r} would clash with the prediction column(s) named after "
            f"prediction_column={plan.prediction_column!r}; pick another prediction_column"
        )
    codec.check_features(schema, features, plan.content_type)
    return keep, features


def chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream into batches of ``rows`` (never a 1-row tail after a full batch).

    SageMaker's CSV decoding squeezes a 1-row request to one dimension, which most
    models refuse, so a 1-row remainder rides with the batch before it.
    """
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    held: pa.RecordBatch | None = None
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(rows - count, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            count += take
            offset += take
            if count == rows:
                if held is not None:
                    yield held
                held = pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
                pending, count = [], 0
    tail = pa.Table.from_batches(pending).combine_chunks().to_batches() if pending else []
    if held is not None and tail and tail[0].num_rows == 1:
        yield pa.Table.from_batches([held, tail[0]]).combine_chunks().to_batches()[0]
        return
    if held is not None:
        yield held
    if tail and tail[0].num_rows:
        yield tail[0]


class _Scorer:
    """Sends one batch's features (split to fit ``max_payload``) and decodes the answers."""

    def __init__(self, client: Future[ModelClient], plan: Plan) -> None:
        self.client = client  # a future: the server may still be starting
        self.plan = plan
        # No Accept header unless asked: the model answers in its default type, as an
        # endpoint does (SageMaker's default is JSON, the cheapest to encode and decode).
        self.accept = plan.accept
        self.bytes_per_row: float | None = None
        self.requests = 0

    def _pieces(self, batch: pa.RecordBatch) -> Iterator[tuple[int, pa.RecordBatch, bytes]]:
        limit = self.plan.max_payload
        rows = batch.num_rows
        per = max(2, int(limit * 0.9 / self.bytes_per_row)) if self.bytes_per_row else rows
        offset = 0
        while offset < rows:
            take = min(per, rows - offset)
            if 0 < rows - offset - take < 2:  # no 1-row request after a bigger one
                take = rows - offset
            yield from self._fit(offset, batch.slice(offset, take))
            offset += take

    def _fit(
        self, offset: int, piece: pa.RecordBatch
    ) -> Iterator[tuple[int, pa.RecordBatch, bytes]]:
        body = codec.encode(piece, self.plan.content_type, like_csv=self.plan.npy_like_csv)
        if piece.num_rows:
            self.bytes_per_row = len(body) / piece.num_rows
        if len(body) <= self.plan.max_payload:
            yield offset, piece, body
            return
        if piece.num_rows <= 1:
            raise ScoringError(
                f"one row encodes to {len(body):,} bytes, more than max_payload "
                f"({self.plan.max_payload / MB:g} MB); raise max_payload"
            )
        half = piece.num_rows // 2
        yield from self._fit(offset, piece.slice(0, half))
        yield from self._fit(offset + half, piece.slice(half))

    def __call__(self, start: int, features: pa.RecordBatch) -> list[pa.Array]:
        import pyarrow as pa

        parts: list[list[pa.Array]] = []
        for offset, piece, body in self._pieces(features):
            first, last = start + offset + 1, start + offset + piece.num_rows
            client = self.client.result()  # the server's start failing raises its error
            try:
                answer, answer_type = client.invoke(body, self.plan.content_type, self.accept)
                self.requests += 1
                parts.append(
                    codec.decode(answer, answer_type or self.accept or codec.JSON, piece.num_rows)
                )
            except InvocationError as exc:
                raise ScoringError(
                    f"the model could not score input rows {first:,} to {last:,} "
                    f"(status {exc.status_code}): {exc.body.strip()[:2000]}"
                ) from exc
            except EndpointError as exc:
                raise ScoringError(
                    f"the model server failed while scoring input rows {first:,} to {last:,}: {exc}"
                ) from exc
            except codec.DecodeError as exc:
                raise ScoringError(f"input rows {first:,} to {last:,}: {exc}") from exc
        if len(parts) == 1:
            return parts[0]
        widths = {len(p) for p in parts}
        if len(widths) != 1:
            raise ScoringError(
                f"the model answered different numbers of columns within input rows "
                f"{start + 1:,} to {start + features.num_rows:,}"
            )
        return [pa.concat_arrays([p[i] for p in parts]) for i in range(widths.pop())]


def check_nulls(batch: pa.RecordBatch, features: list[str], start: int) -> None:
    import pyarrow.compute as pc

    for name in features:
        column = batch.column(name)
        if column.null_count:
            index = pc.index(pc.is_null(column), True).as_py()
            raise ScoringError(
                f"feature column {name!r} is NULL in input row {start + index + 1:,} (of rows "
                f"{start + 1:,} to {start + batch.num_rows:,}); the model gets numbers: filter "
                f"or fill the NULLs in the query (WHERE {name} IS NOT NULL, COALESCE(...))"
            )


def output_schema(
    input_schema: pa.Schema, keep: list[str], columns: list[pa.Array], prediction_column: str
) -> pa.Schema:
    """Keep columns as in the input, then one or several prediction columns."""
    import pyarrow as pa

    fields = [input_schema.field(name) for name in keep]
    if len(columns) == 1:
        names = [prediction_column]
    else:
        names = [f"{prediction_column}_{i}" for i in range(len(columns))]
    fields += [pa.field(name, column.type) for name, column in zip(names, columns, strict=True)]
    return pa.schema(fields)


def open_target_writer(target: Target, schema: pa.Schema, if_exists: str) -> Any:
    from ..data.writer import FileWriter, TableWriter

    if target.path is not None:
        return FileWriter(
            target.path, arrow_schema=schema, if_exists=if_exists, file_format=target.file_format
        )
    assert target.connection is not None and target.table is not None
    return TableWriter(
        target.connection, target.table, target.schema, arrow_schema=schema, if_exists=if_exists
    )


def _ready(client: ModelClient) -> Future[ModelClient]:
    future: Future[ModelClient] = Future()
    future.set_result(client)
    return future


def score(
    client: ModelClient | Future[ModelClient],
    source: Input,
    target: Target,
    plan: Plan,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    model: str = "",
    open_writer: Callable[[Target, pa.Schema, str], Any] = open_target_writer,
) -> ScoringSummary:
    """Score ``source`` with the model behind ``client`` and write ``target``.

    Parameters
    ----------
    client : ModelClient or concurrent.futures.Future of ModelClient
        The model's server, or its start under way: input is read ahead (up to
        :data:`STARTUP_READ_AHEAD` bytes) until it is ready, and its failure to start is
        raised as it is.
    workers : int, optional
        The server's workers when ``client`` is a future (default: one per core).
    source : Input
        The opened input (read in this thread).
    target : Target
        Where the keep columns and predictions go.
    plan : Plan
        Columns, content types, batch and payload sizes, ``if_exists``.
    progress : callable, optional
        Called with the rows written so far after every batch.
    model : str
        The model's name for the summary.
    open_writer : callable
        Makes the writer for the target once the output schema is known.

    Returns
    -------
    ScoringSummary

    Raises
    ------
    ConfigurationError
        For columns the input does not have or cannot encode.
    ScoringError
        If a batch cannot be scored (the message names the rows and the model's message),
        the server fails, or the row counts differ.  The target is left as it was.
    """
    import pyarrow as pa

    began = time.monotonic()
    keep, features = select_columns(source.schema, plan)
    if isinstance(client, Future):
        starting = client
        in_flight = max(1, workers or os.cpu_count() or 1) + 1
    else:
        starting = _ready(client)
        in_flight = client.workers + 1
    scorer = _Scorer(starting, plan)
    pending: deque[tuple[int, pa.RecordBatch, Future[list[pa.Array]], int]] = deque()
    ahead = 0  # bytes of the pending batches
    writer: Any = None
    rows_in = 0
    schema: pa.Schema | None = None
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="fedsage-score")

    def room() -> bool:
        """Whether to read another batch before writing the oldest one."""
        if not pending:
            return True
        if not starting.done():  # the server is starting: read ahead, bounded in bytes
            return ahead < STARTUP_READ_AHEAD
        if starting.exception() is not None:
            return False  # write_one raises the start's error
        return len(pending) < in_flight and not pending[0][2].done()

    def write_one() -> None:
        nonlocal writer, schema, ahead
        start, kept, future, size = pending.popleft()
        ahead -= size
        columns = future.result()
        if schema is None:
            schema = output_schema(source.schema, keep, columns, plan.prediction_column)
            writer = open_writer(target, schema, plan.if_exists)
        predictions = schema.names[len(keep) :]
        if len(columns) != len(predictions):
            raise ScoringError(
                f"the model answered {len(columns)} columns for input rows {start + 1:,} to "
                f"{start + kept.num_rows:,}, {len(predictions)} before"
            )
        arrays = list(kept.columns)
        for column, name in zip(columns, predictions, strict=True):
            try:
                arrays.append(column.cast(schema.field(name).type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ScoringError(
                    f"the model's predictions for input rows {start + 1:,} to "
                    f"{start + kept.num_rows:,} are {column.type}, earlier ones "
                    f"{schema.field(name).type}: {exc}"
                ) from exc
        writer.write(pa.RecordBatch.from_arrays(arrays, schema=schema))
        if progress is not None:
            progress(writer.rows_written)

    ok = False
    try:
        for batch in chunks(source.batches, plan.batch_rows):
            check_nulls(batch, features, rows_in)
            kept = batch.select(keep)
            sent = batch.select(features)
            size = kept.nbytes + sent.nbytes
            pending.append((rows_in, kept, pool.submit(scorer, rows_in, sent), size))
            ahead += size
            rows_in += batch.num_rows
            while not room():
                write_one()
        while pending:
            write_one()
        starting.result()  # no rows at all: still the server's start error, if any
        if writer is None:  # no rows at all: the model was never asked
            schema = pa.schema(
                [source.schema.field(n) for n in keep]
                + [pa.field(plan.prediction_column, pa.float64())]
            )
            writer = open_writer(target, schema, plan.if_exists)
        if writer.rows_written != rows_in:
            raise ScoringError(
                f"read {rows_in:,} rows but wrote {writer.rows_written:,}; nothing was committed"
            )
        written = int(writer.commit(expected_rows=rows_in))
        ok = True
    finally:
        for _, _, future, _ in pending:
            future.cancel()
        # On failure (Ctrl-C included) requests still on the wire are not waited for:
        # the caller stops the server, which ends them.
        pool.shutdown(wait=ok, cancel_futures=True)
        if ok:
            source.close()
        else:
            # The first error is the one to report; cleaning up after it (a dead
            # connection, say) must not replace it.
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.abort()
            with contextlib.suppress(Exception):
                source.close()
    assert schema is not None
    return ScoringSummary(
        rows_in=rows_in,
        rows_written=written,
        seconds=time.monotonic() - began,
        target=str(target),
        columns=list(schema.names),
        model=model,
        requests=scorer.requests,
        content_type=plan.content_type,
        content_type_reason=plan.content_type_reason,
    )
