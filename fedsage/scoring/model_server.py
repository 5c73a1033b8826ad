"""The model's own server, as batch scoring talks to it.

Batch scoring never loads a model into fedsage's interpreter: it starts the same local
endpoint server ``deploy`` starts (the model's ``model_fn``/``input_fn``/``predict_fn``/
``output_fn`` in the runtime that trained it) and sends it requests over keep-alive HTTP
on 127.0.0.1, so a model scores the same in batch as online.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EndpointError, InvocationError, ScoringError

if TYPE_CHECKING:
    import httpx

    from ..runtimes.base import Runtime

__all__ = ["BackgroundStart", "ModelClient", "endpoint_client", "temporary_endpoint"]

_UNSAFE = re.compile(r"[^a-zA-Z0-9]+")


class ModelClient:
    """Requests to one model server's ``/invocations`` (thread-safe, keep-alive).

    Parameters
    ----------
    name : str
        The endpoint's name (used in error messages).
    url : str
        The server's base URL (``http://127.0.0.1:PORT``).
    workers : int
        The server's worker processes; the client keeps ``workers + 1`` connections.
    timeout : float, default=70.0
        Seconds to wait for one answer (the server's own per-request limit is 60 s).
    """

    def __init__(self, name: str, url: str, workers: int, *, timeout: float = 70.0) -> None:
        import httpx

        self.name = name
        self.url = url
        self.workers = max(1, int(workers))
        connections = self.workers + 1
        self._client: httpx.Client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def __repr__(self) -> str:
        return f"ModelClient(name={self.name!r}, url={self.url!r}, workers={self.workers})"

    def invoke(self, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]:
        """Send one request and return the answer's body and ``Content-Type``.

        Parameters
        ----------
        body : bytes
            The request payload.
        content_type : str
            The request's ``Content-Type`` (what the model's ``input_fn`` decodes).
        accept : str or None
            The ``Accept`` header; ``None`` lets the server use its default.

        Returns
        -------
        tuple of (bytes, str)
            The response body and its content type.

        Raises
        ------
        InvocationError
            If the model answered with a non-2xx status; the message carries the status and
            the model's own error text.
        EndpointError
            If the server could not be reached or dropped the connection (a worker died).
        """
        import httpx

        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        try:
            answer = self._client.post(self.url + "/invocations", content=body, headers=headers)
        except httpx.TransportError as exc:
            raise EndpointError(
                f"the model server of endpoint {self.name!r} ({self.url}) dropped the request: "
                f"{type(exc).__name__}: {exc or 'connection closed'} (did a worker die? see "
                f"the endpoint's log with: fedsage endpoints logs {self.name})"
            ) from exc
        if not 200 <= answer.status_code < 300:
            raise InvocationError(self.name, answer.status_code, answer.text)
        return answer.content, answer.headers.get("content-type", "")

    def close(self) -> None:
        """Close the client's connections (the server keeps running)."""
        self._client.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _client_for(description: dict[str, Any]) -> ModelClient:
    local = description.get("Local") or {}
    if description.get("EndpointStatus") != "InService" or not local.get("url"):
        reason = description.get("FailureReason") or f"it is {description.get('EndpointStatus')}"
        raise EndpointError(f"endpoint {description.get('EndpointName')!r} cannot score: {reason}")
    return ModelClient(description["EndpointName"], local["url"], local.get("workers") or 1)


def temporary_name(name_hint: str) -> str:
    """A fresh endpoint name ``score-<hint>-<8 hex>`` within SageMaker's 63 characters."""
    hint = _UNSAFE.sub("-", name_hint).strip("-")[:40].strip("-") or "model"
    return f"score-{hint}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def temporary_endpoint(
    *,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    env: dict[str, str],
    workers: int | None,
    max_body: int,
    name_hint: str,
) -> Iterator[ModelClient]:
    """Start the model's own server as a temporary local endpoint; delete it at the end.

    The endpoint is listed by ``fedsage endpoints list`` while it runs and is deleted
    when the block ends, whatever ends it (an exception, ``KeyboardInterrupt``).

    Parameters
    ----------
    model_tar, code_tar, program, runtime, env
        What :func:`fedsage.serving.endpoints.create_endpoint` takes.
    workers : int or None
        Worker processes; ``None`` means one per core.
    max_body : int
        Largest request body the server accepts, in bytes.
    name_hint : str
        Part of the endpoint's name (the job's name, say).

    Yields
    ------
    ModelClient
        A client for the server.

    Raises
    ------
    EndpointError
        If the server does not start (the message carries the end of its log).
    """
    from ..serving import endpoints

    name = temporary_name(name_hint)
    created = False
    client: ModelClient | None = None
    try:
        description = endpoints.create_endpoint(
            name,
            model_tar=model_tar,
            code_tar=code_tar,
            program=program,
            runtime=runtime,
            workers=workers,
            env=env,
            max_body=max_body,
            # Its warm parent would stop with it: a running one saves the imports, a new
            # one would cost its start (0.7 s here) and its memory for nothing.
            warm_start=False,
        )
        created = True
        client = _client_for(description)
        try:
            yield client
        except ScoringError as exc:
            # The endpoint and its log are deleted below: keep the log's end in the error.
            tail = endpoints.log_tail(endpoints.endpoint_log(name), lines=20)
            raise ScoringError(
                f"{exc}\n--- end of the model server's log (its temporary endpoint {name} "
                f"is deleted) ---\n{tail}"
            ) from exc
    finally:
        if client is not None:
            client.close()
        if created:
            with contextlib.suppress(EndpointError):
                endpoints.delete_endpoint(name)


class BackgroundStart:
    """:func:`temporary_endpoint` started in a thread, so the caller reads its input meanwhile.

    Use it as a context manager: leaving the block waits for the start to end (a second
    Ctrl-C during that wait is held back until the cleanup is done) and then deletes the
    endpoint, whatever ended the block; a :class:`~fedsage.errors.ScoringError` gets the
    end of the server's log, as with :func:`temporary_endpoint`.

    Parameters
    ----------
    **settings
        What :func:`temporary_endpoint` takes.

    Attributes
    ----------
    client : concurrent.futures.Future of ModelClient
        Done when the server answers ``/ping`` (or failed to start: its error).
    seconds : float
        How long the start took (0.0 until it ended).
    """

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._stack = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedsage-server-start")
        self.seconds = 0.0
        self.client: Future[ModelClient] = self._pool.submit(self._start)

    def _start(self) -> ModelClient:
        began = time.monotonic()
        try:
            client: ModelClient = self._stack.enter_context(temporary_endpoint(**self._settings))
            return client
        finally:
            self.seconds = time.monotonic() - began

    def __enter__(self) -> BackgroundStart:
        return self

    def __exit__(self, *exc: Any) -> bool:
        interrupted = False
        while True:  # the endpoint must not outlive the call: wait for the start to end
            try:
                self.client.exception()
                break
            except KeyboardInterrupt:
                interrupted = True
        self._pool.shutdown(wait=True)
        handled = bool(self._stack.__exit__(*exc))
        if interrupted:
            raise KeyboardInterrupt
        return handled


def endpoint_client(name: str) -> ModelClient:
    """A client for an existing local endpoint.

    Parameters
    ----------
    name : str
        The endpoint's name.

    Returns
    -------
    ModelClient
        A client with as many connections as the endpoint has workers (+1).

    Raises
    ------
    EndpointError
        If there is no such endpoint or it is not in service.
    """
    from ..serving import endpoints

    return _client_for(endpoints.describe_endpoint(name))
