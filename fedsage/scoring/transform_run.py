"""Running one local transform job: the model's own server, then every input file.

The sequence is the service's: start the model server (the same one ``deploy`` starts,
in the runtime that trained the model) with ``SAGEMAKER_BATCH=true``, wait for
``GET /ping``, read ``GET /execution-parameters`` if the script answers it, then send
each file's mini-batches to ``POST /invocations``.

- ``MaxConcurrentTransforms``, ``MaxPayloadInMB`` and ``BatchStrategy``: the request's
  value, else the container's ``/execution-parameters``, else 1, 6 and ``MultiRecord``.
- Up to ``instance_count x MaxConcurrentTransforms`` requests are in flight; files run
  side by side, and each file's answers are written in its record order.
- A file whose record cannot be sent or whose request fails gets no ``.out``; the other
  files go on; the job ends ``Failed`` with a reason naming the file and the records.
- A request the server drops (no answer) is retried up to ``InvocationsMaxRetries``
  times; an error status from the model is the model's answer and is not retried.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EndpointError, InvocationError
from .batches import (
    MiniBatch,
    Record,
    RecordError,
    mini_batches,
    open_input,
    payload_limit,
    split_records,
)
from .data_processing import DataProcessing, ProcessingError
from .transform_io import InputFile, output_uri, store_output
from .transform_jobs import TransformJobRecord, job_log, transform_jobs

if TYPE_CHECKING:
    from ..runtimes.base import Runtime
    from .model_server import ModelClient

__all__ = ["JobPlan", "ModelFiles", "ModelSource", "run_job"]

logger = logging.getLogger(__name__)

_DEFAULT_CONCURRENCY = 1
_DEFAULT_PAYLOAD_MB = 6
_DEFAULT_STRATEGY = "MultiRecord"
_STRATEGIES = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}
_UNLIMITED_BODY = 1 << 31
_RETRY_PAUSE = 0.5
_WATCH_SECONDS = 0.25


@dataclass(frozen=True)
class ModelFiles:
    """A model's files, fetched into a scratch folder: what the model server runs."""

    model_tar: Path
    code_tar: Path | None
    program: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSource:
    """A trained model as a transformer needs it (the backend builds it).

    Attributes
    ----------
    model_name : str
        ``ModelName`` (the SDK's estimator: the base job name and a timestamp).
    runtime : Runtime
        The runtime that trained the model (its server runs there).
    region : str
        ``SAGEMAKER_REGION`` and the region of ARNs.
    model_env : dict
        The variables SageMaker's model would carry (``SAGEMAKER_PROGRAM``, ...), which
        Describe's ``Environment`` echoes as the SDK sends them.
    fetch : callable
        ``fetch(scratch) -> ModelFiles``: copies the model and code into ``scratch``.
    default_output : str
        ``s3://<default bucket>[/<prefix>]``, under which ``output_path`` defaults to
        ``<default_output>/<job name>``.
    base_job_name : str
        The default base of transform job names.
    """

    model_name: str
    runtime: Runtime
    region: str
    model_env: dict[str, str]
    fetch: Callable[[Path], ModelFiles]
    default_output: str
    base_job_name: str


@dataclass(frozen=True)
class JobPlan:
    """Everything a job runs with, checked before the job is recorded."""

    name: str
    files: list[InputFile]
    output_path: str
    content_type: str | None
    compression: str
    split_type: str
    accept: str | None
    assemble_with: str
    processing: DataProcessing
    instance_count: int
    strategy: str | None
    max_payload: int | None
    max_concurrent: int | None
    env: dict[str, str]
    retries: int
    workers: int | None = None


class _Stopped(Exception):
    pass


def server_env(plan: JobPlan, files: ModelFiles, region: str) -> dict[str, str]:
    """The model server's variables: model, then the job's ``env``, then the batch ones.

    ``SAGEMAKER_BATCH=true`` always; ``SAGEMAKER_MAX_PAYLOAD_IN_MB``,
    ``SAGEMAKER_BATCH_STRATEGY`` and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` only when the
    request sets them, as the service documents for containers.
    """
    env = {**files.env, "SAGEMAKER_REGION": region, **plan.env, "SAGEMAKER_BATCH": "true"}
    if plan.max_payload is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(plan.max_payload)
    if plan.strategy is not None:
        env["SAGEMAKER_BATCH_STRATEGY"] = plan.strategy.replace("Record", "_RECORD").upper()
    if plan.max_concurrent:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(plan.max_concurrent)
    return env


def resolve(plan: JobPlan, container: dict[str, Any]) -> dict[str, Any]:
    """Request, else ``/execution-parameters``, else defaults."""
    concurrent = plan.max_concurrent or _positive(container.get("MaxConcurrentTransforms"))
    payload = plan.max_payload
    if payload is None:
        payload = _positive(container.get("MaxPayloadInMB"), allow_zero=True)
    strategy = plan.strategy or _STRATEGIES.get(str(container.get("BatchStrategy")).upper())
    return {
        "MaxConcurrentTransforms": concurrent or _DEFAULT_CONCURRENCY,
        "MaxPayloadInMB": _DEFAULT_PAYLOAD_MB if payload is None else payload,
        "BatchStrategy": strategy or _DEFAULT_STRATEGY,
    }


def _positive(value: Any, allow_zero: bool = False) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 or (allow_zero and value == 0) else None


def execution_parameters(client: ModelClient) -> dict[str, Any]:
    """``GET /execution-parameters``; ``{}`` when the container does not answer it."""
    import httpx

    try:
        answer = httpx.get(client.url + "/execution-parameters", timeout=10.0)
    except httpx.HTTPError:
        return {}
    if answer.status_code != 200:
        return {}
    try:
        value = answer.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _log(name: str, line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(job_log(name), "a", encoding="utf-8") as log:
        log.write(f"{stamp} {line}\n")


def run_job(plan: JobPlan, source: ModelSource, stop: threading.Event) -> None:
    """Run ``plan`` to its end and record the result; never raises.

    Parameters
    ----------
    plan : JobPlan
        The checked job.
    source : ModelSource
        The model.
    stop : threading.Event
        Set to stop the job (``StopTransformJob``): no new request is sent, files not
        finished get no ``.out``, and the job ends ``Stopped``.
    """
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch_for_stop, args=(plan.name, stop, done), name="fedsage-transform-watch",
        daemon=True,
    )  # fmt: skip
    watcher.start()
    try:
        _run(plan, source, stop)
    except BaseException as exc:  # the job must end in the record, whatever happened
        logger.exception("transform job %s failed", plan.name)
        reason = f"InternalServerError: {type(exc).__name__}: {exc}"
        _finish(plan.name, "Stopped" if stop.is_set() else "Failed", reason)
        if not isinstance(exc, Exception):
            raise
    finally:
        done.set()


def _watch_for_stop(name: str, stop: threading.Event, done: threading.Event) -> None:
    """Set ``stop`` when another process asks the job to stop (status ``Stopping``)."""
    while not done.wait(_WATCH_SECONDS):
        try:
            if transform_jobs.get(name).status == "Stopping":
                stop.set()
                return
        except Exception:  # the registry is busy or gone: look again later
            logger.debug("cannot read transform job %s", name, exc_info=True)


def _finish(name: str, status: str, reason: str | None) -> None:
    def end(record: TransformJobRecord) -> None:
        if not record.has_ended:
            record.finish(status, reason)

    transform_jobs.modify(name, end)
    _log(name, f"Job {status}" + (f": {reason}" if reason else ""))


def _run(plan: JobPlan, source: ModelSource, stop: threading.Event) -> None:
    from .model_server import temporary_endpoint

    transform_jobs.modify(plan.name, lambda r: setattr(r, "started", time.time()))
    cores = os.cpu_count() or 1
    wanted = plan.instance_count * (plan.max_concurrent or cores)
    limit_mb = plan.max_payload
    max_body = _UNLIMITED_BODY if limit_mb == 0 else (limit_mb or 100) * (1 << 20)
    with tempfile.TemporaryDirectory(prefix="fedsage-transform-") as tmp:
        scratch = Path(tmp)
        files = source.fetch(scratch)
        _log(plan.name, f"Starting the model server of {source.model_name}")
        try:
            server = temporary_endpoint(
                model_tar=files.model_tar,
                code_tar=files.code_tar,
                program=files.program,
                runtime=source.runtime,
                env=server_env(plan, files, source.region),
                workers=plan.workers or max(1, min(cores, wanted)),
                max_body=max_body,
                name_hint=plan.name,
            )
            client = server.__enter__()
        except EndpointError as exc:
            _finish(plan.name, "Failed", f"AlgorithmError: Model container failed to start: {exc}")
            return
        try:
            resolved = resolve(plan, execution_parameters(client))
            transform_jobs.modify(plan.name, lambda r: setattr(r, "resolved", resolved))
            _log(plan.name, f"Execution parameters: {resolved}")
            failures = _run_files(plan, client, resolved, scratch, stop)
        finally:
            server.__exit__(None, None, None)
    if stop.is_set():
        _finish(plan.name, "Stopped", None)
    elif failures:
        first = failures[0]
        more = f" ({len(failures)} of {len(plan.files)} files failed)" if len(failures) > 1 else ""
        _finish(plan.name, "Failed", f"ClientError: {first}{more}")
    else:
        _finish(plan.name, "Completed", None)


def _run_files(
    plan: JobPlan,
    client: ModelClient,
    resolved: dict[str, Any],
    scratch: Path,
    stop: threading.Event,
) -> list[str]:
    in_flight = plan.instance_count * int(resolved["MaxConcurrentTransforms"])
    parallel_files = min(in_flight, len(plan.files))
    # Each file keeps its share of the requests queued, so bodies held in memory stay
    # about in_flight, however many files run side by side.
    window = max(1, -(-in_flight // parallel_files))
    invoker = _Invoker(in_flight)
    worker = _FileWorker(plan, client, resolved, invoker, window, stop)
    pending = queue.SimpleQueue[tuple[int, InputFile]]()
    for item in enumerate(plan.files):
        pending.put(item)
    failures: dict[int, str] = {}

    def run_files() -> None:
        while True:
            try:
                index, file = pending.get_nowait()
            except queue.Empty:
                return
            problem = worker.run(index, file, scratch / f"{index}.out")
            if problem is not None:
                failures[index] = problem

    threads = [
        threading.Thread(target=run_files, name="fedsage-transform-file", daemon=True)
        for _ in range(parallel_files)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        invoker.close()
    return [failures[index] for index in sorted(failures)]


class _FileWorker:
    """Sends one file's mini-batches, keeping up to ``in_flight`` of them queued, in order."""

    def __init__(
        self,
        plan: JobPlan,
        client: ModelClient,
        resolved: dict[str, Any],
        invoker: _Invoker,
        in_flight: int,
        stop: threading.Event,
    ) -> None:
        self.plan = plan
        self.client = client
        self.strategy = str(resolved["BatchStrategy"])
        self.limit = payload_limit(int(resolved["MaxPayloadInMB"]))
        self.invoker = invoker
        self.in_flight = in_flight
        self.stop = stop
        self.content_type = plan.content_type or "application/octet-stream"
        self.lock = threading.Lock()

    def run(self, index: int, file: InputFile, temp: Path) -> str | None:
        """Process one file; return ``None`` or the failure text (the file has no .out)."""
        plan = self.plan
        target = output_uri(plan.output_path, file.relative)
        counts = {"records": 0, "requests": 0}
        try:
            if self.stop.is_set():
                raise _Stopped
            with open(file.path, "rb") as raw, open(temp, "wb") as out:
                self._send(file, open_input(raw, plan.compression), out, counts)
            store_output(target, temp)
        except _Stopped:
            temp.unlink(missing_ok=True)
            self._record(file, target, "Stopped", counts, None)
            return None
        except _FileFailure as exc:
            temp.unlink(missing_ok=True)
            text = f"{file.uri}: {exc}"
            self._record(file, target, "Failed", counts, text)
            return text
        except OSError as exc:
            temp.unlink(missing_ok=True)
            text = f"{file.uri}: cannot read or write the file: {exc}"
            self._record(file, target, "Failed", counts, text)
            return text
        self._record(file, target, "Completed", counts, None)
        return None

    def _record(
        self, file: InputFile, target: str, status: str, counts: dict[str, int], reason: str | None
    ) -> None:
        entry = {
            "Input": file.uri,
            "Output": target if status == "Completed" else None,
            "Status": status,
            "Records": counts["records"],
            "Requests": counts["requests"],
        }
        if reason:
            entry["FailureReason"] = reason
        with self.lock:
            transform_jobs.modify(self.plan.name, lambda r: r.files.append(entry))
        detail = f" -> {target}" if status == "Completed" else (f": {reason}" if reason else "")
        _log(
            self.plan.name,
            f"{file.uri}: {status}: {counts['records']} records in {counts['requests']} "
            f"requests{detail}",
        )

    def _batches(self, stream: Any, originals: dict[int, bytes]) -> Iterator[MiniBatch]:
        processing = self.plan.processing

        def records() -> Iterator[Record]:
            for record in split_records(stream, self.plan.split_type):
                if processing.per_record_output:
                    originals[record.line] = record.data
                if processing.filters_input:
                    try:
                        data = processing.filter_input(record.data)
                    except ProcessingError as exc:
                        where = f"record {record.line} (line {record.line})"
                        raise _FileFailure(f"{where}: {exc}") from exc
                    record = Record(data, record.line)
                yield record

        return mini_batches(records(), self.strategy, self.limit)

    def _send(self, file: InputFile, stream: Any, out: Any, counts: dict[str, int]) -> None:
        originals: dict[int, bytes] = {}
        window: deque[tuple[MiniBatch, Future[tuple[bytes, str]]]] = deque()
        try:
            for batch in self._batches(stream, originals):
                if self.stop.is_set():
                    raise _Stopped
                window.append((batch, self.invoker.submit(self._invoke, batch)))
                while len(window) >= self.in_flight:
                    self._write(*window.popleft(), originals, out, counts)
            while window:
                self._write(*window.popleft(), originals, out, counts)
        except RecordError as exc:
            raise _FileFailure(str(exc)) from exc
        finally:
            for _batch, future in window:
                future.cancel()

    def _invoke(self, batch: MiniBatch) -> tuple[bytes, str]:
        if self.stop.is_set():
            raise _Stopped
        attempts = self.plan.retries + 1
        for attempt in range(attempts):
            try:
                return self.client.invoke(batch.body, self.content_type, self.plan.accept)
            except InvocationError:
                raise
            except EndpointError:
                if attempt + 1 == attempts or self.stop.is_set():
                    raise
                time.sleep(_RETRY_PAUSE * (attempt + 1))  # the server restarts the worker
        raise AssertionError("unreachable")

    def _write(
        self,
        batch: MiniBatch,
        future: Future[tuple[bytes, str]],
        originals: dict[int, bytes],
        out: Any,
        counts: dict[str, int],
    ) -> None:
        where = batch.where()
        try:
            body, answer_type = future.result()
        except InvocationError as exc:
            raise _FileFailure(
                f"{where}: the model answered {exc.status_code}: {exc.body.strip()[:400]}"
            ) from exc
        except EndpointError as exc:
            raise _FileFailure(f"{where}: Unable to get response from algorithm: {exc}") from exc
        counts["records"] += len(batch.records)
        counts["requests"] += 1
        processing = self.plan.processing
        newline = self.plan.assemble_with == "Line"
        if not processing.per_record_output:
            out.write(body)
            if newline and not body.endswith(b"\n"):
                out.write(b"\n")
            return
        try:
            answers = processing.split_answer(body, answer_type, len(batch.records))
            for record, answer in zip(batch.records, answers, strict=True):
                original = originals.pop(record.line)
                out.write(processing.finish(original, answer, answer_type))
                if newline:
                    out.write(b"\n")
        except ProcessingError as exc:
            raise _FileFailure(f"{where}: {exc}") from exc


class _FileFailure(Exception):
    """One file failed (the text names the records)."""


class _Invoker:
    """``size`` daemon threads that run submitted calls, like a thread pool.

    Not ``concurrent.futures.ThreadPoolExecutor``: at interpreter exit that pool refuses
    new work and joins its threads before ``atexit`` handlers run, so a job could not be
    stopped cleanly when its process exits.  These threads are daemons, and the exit
    handler stops the job before anything else.
    """

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[Any], Any], Any] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._loop, name="fedsage-transform-invoke", daemon=True)
            for _ in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[Any], Any], argument: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((future, call, argument))
        return future

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, call, argument = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(argument))
            except BaseException as exc:  # handed to whoever waits for the result
                future.set_exception(exc)

    def close(self) -> None:
        """Let the queued calls finish (or be cancelled), then end the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
