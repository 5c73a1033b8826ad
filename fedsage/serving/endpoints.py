"""Local endpoints: a detached model server per endpoint, recorded in fedsage's registry.

Each endpoint lives in ``FEDSAGE_HOME/endpoints/<name>/`` (``model/``, ``code/``,
``config.json``, ``state.json``, ``server.log``).  Its supervisor runs in a new session,
so it outlives the notebook kernel or shell that created it.  A record whose supervisor
is gone is reported as ``Failed``, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._home import Records, home_dir, write_private
from .._process import ProcessIdentity, start_service, stop_process
from ..errors import ConfigurationError, EndpointError, InvocationError
from ._worker.fedsage_worker import DEFAULT_MAX_BODY  # the supervisor only when one starts

if TYPE_CHECKING:
    import httpx

    from ..runtimes.base import Runtime

__all__ = [
    "Invocation",
    "create_endpoint",
    "delete_endpoint",
    "describe_endpoint",
    "endpoint_log",
    "invoke_endpoint",
    "list_endpoints",
    "log_tail",
]

KIND = "endpoint"
_WORKER_PATH = Path(__file__).resolve().parent / "_worker"  # supervisor.WORKER_PATH
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


@dataclass
class EndpointRecord:
    """A local endpoint as the registry keeps it; ``server`` is its supervisor process."""

    name: str
    created: float
    status: str = "Creating"
    updated: float | None = None
    deploy_seconds: float | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None
    server: ProcessIdentity | None = None
    dir: str | None = None
    log: str | None = None
    instance_count: int = 1
    workers: int | None = None
    program: str | None = None
    runtime: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["server"] = None if self.server is None else self.server.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointRecord:
        values = dict(data)
        values["server"] = ProcessIdentity.from_dict(values.get("server"))
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """The record in the shape of SageMaker's ``DescribeEndpoint`` (plus ``Local``)."""
        description: dict[str, Any] = {
            "EndpointName": self.name,
            "EndpointConfigName": self.name,
            "EndpointStatus": self.status,
            "CreationTime": _iso(self.created),
            "LastModifiedTime": _iso(self.updated or self.created),
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "CurrentInstanceCount": self.instance_count,
                    "DesiredInstanceCount": self.instance_count,
                }
            ],
            "Local": {
                "url": self.url,
                "pid": None if self.server is None else self.server.pid,
                "port": self.port,
                "workers": self.workers,
                "dir": self.dir,
                "log": self.log,
                "runtime": self.runtime,
                "deploy_seconds": self.deploy_seconds,
            },
        }
        if self.status == "InService" and (self.server is None or not self.server.alive()):
            description["EndpointStatus"] = "Failed"
            description["FailureReason"] = (
                f"the model server (pid {description['Local']['pid']}) is no longer running; "
                f"see its log with 'fedsage endpoints logs {self.name}' and remove it with "
                f"'fedsage endpoints delete {self.name}'"
            )
        return description


def _no_such_endpoint(name: str) -> Exception:
    return EndpointError(
        f"there is no endpoint named {name!r}; list them with: fedsage endpoints list"
    )


#: The local endpoints in the registry.
endpoints: Records[EndpointRecord] = Records(KIND, EndpointRecord.from_dict, _no_such_endpoint)
_clients: dict[str, tuple[str, httpx.Client]] = {}
_clients_lock = threading.Lock()


class Invocation(NamedTuple):
    """What an endpoint answered: the raw body and its ``Content-Type``."""

    body: bytes
    content_type: str


def _endpoint_dir(name: str) -> Path:
    return home_dir("endpoints") / name


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid endpoint name {name!r}: use 1 to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit (SageMaker's EndpointName rule)"
        )


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of the log at ``path`` (for error messages)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def create_endpoint(
    name: str,
    *,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    instance_count: int = 1,
    workers: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    max_body: int = DEFAULT_MAX_BODY,
    ready_timeout: float = 120.0,
    preload: bool | None = None,
    warm_start: bool = True,
) -> dict[str, Any]:
    """Unpack a model, start a detached model server for it and wait until it is healthy.

    Parameters
    ----------
    name : str
        The endpoint name (SageMaker's rule: 1-63 letters, digits, hyphens).
    model_tar : pathlib.Path
        ``model.tar.gz``; extracted into the endpoint's ``model/`` folder.
    code_tar : pathlib.Path or None
        ``sourcedir.tar.gz`` with the entry point; ``None`` means the code is inside the
        model (``model/code`` if present, else the model folder).
    program : str or None
        The entry point file (``SAGEMAKER_PROGRAM``), e.g. ``"train.py"``.
    runtime : Runtime
        The runtime whose interpreter runs the workers (the one that trained the model).
    instance_count : int, default=1
        SageMaker's ``initial_instance_count``; instances share this machine.
    workers : int, optional
        Worker processes per instance; default ``cpu_count // instance_count`` (>= 1).
    env : dict, optional
        Extra environment for the workers (e.g. ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).
    timeout : float, default=60.0
        Per-request timeout in seconds.
    max_body : int, default=6 MiB
        Largest accepted request body in bytes.
    ready_timeout : float, default=120.0
        How long to wait for ``/ping`` to answer 200.
    preload : bool, optional
        Load the model once in a zygote and fork the workers from it; ``False`` makes
        every worker load its own copy (for models that are not safe to fork).  Default:
        true unless the environment variable ``FEDSAGE_SERVING_PRELOAD`` is ``0``.
    warm_start : bool, default=True
        Start the runtime's warm parent if none runs (see :mod:`fedsage.serving.warm`);
        ``False`` uses a running one only, for a server that lives as long as one task.

    Returns
    -------
    dict
        The endpoint's description, as :func:`describe_endpoint` returns it.

    Raises
    ------
    ConfigurationError
        If the name or a count is invalid, or ``FEDSAGE_READ_TIMEOUT`` /
        ``FEDSAGE_KEEPALIVE_TIMEOUT`` (in ``env`` or ours) is not a positive number.
    EndpointError
        If the name is in use, an archive is unsafe, or the server does not become healthy
        (the message carries the end of the server log).
    """
    _check_name(name)
    if instance_count < 1 or (workers is not None and workers < 1):
        raise ConfigurationError("instance_count and workers must be at least 1")
    from .supervisor import check_worker_env

    check_worker_env({**runtime.env, **(env or {})})  # here, not in the server's log
    per_instance = workers or max(1, (os.cpu_count() or 1) // instance_count)
    now = time.time()
    try:
        endpoints.add(EndpointRecord(name=name, created=now))
    except KeyError:
        raise EndpointError(
            f"an endpoint named {name!r} already exists; pick another name or delete it "
            f"first with: fedsage endpoints delete {name}"
        ) from None
    folder = _endpoint_dir(name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(mode=0o700)
        from .._archive import extract_safely  # tarfile: only when an endpoint is made

        extract_safely(Path(model_tar), folder / "model", error=EndpointError)
        if code_tar is not None:
            extract_safely(Path(code_tar), folder / "code", error=EndpointError)
            code_dir = folder / "code"
        else:
            code_dir = folder / "model" / "code"
            code_dir = code_dir if code_dir.is_dir() else folder / "model"
        from .supervisor import ServerConfig

        config = ServerConfig(
            model_dir=str(folder / "model"),
            python=str(runtime.python),
            code_dir=str(code_dir),
            program=program,
            workers=per_instance * instance_count,
            timeout=timeout,
            max_body=max_body,
            env={**runtime.env, **(env or {})},
            state_file=str(folder / "state.json"),
            preload=_preload() if preload is None else preload,
            warm=True,
            warm_start=warm_start,
            runtime=runtime.framework_version,
        )
        from .warm import with_address

        write_private(folder / "config.json", with_address(config).to_json())
        proc = start_service("fedsage.serving.supervisor", folder, "config.json", "server.log")
        state = _wait_healthy(name, proc, folder, ready_timeout)
    except BaseException as exc:
        if proc is not None:
            stop_process(proc.pid, None, grace=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        tail = log_tail(folder / "server.log")
        endpoints.delete(name)
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, EndpointError) and not isinstance(exc, InvocationError):
            raise EndpointError(f"{exc}\n--- end of the server log ---\n{tail}") from exc
        raise
    server = ProcessIdentity.of(proc.pid)

    def in_service(record: EndpointRecord) -> None:
        done = time.time()
        record.status = "InService"
        record.updated = done
        record.deploy_seconds = round(done - now, 3)
        record.url, record.host, record.port = state["url"], state["host"], state["port"]
        record.server = server
        record.dir = str(folder)
        record.log = str(folder / "server.log")
        record.instance_count = instance_count
        record.workers = per_instance * instance_count
        record.program = program
        record.runtime = runtime.describe()

    endpoints.modify(name, in_service)
    return describe_endpoint(name)


def _preload() -> bool:
    return os.environ.get("FEDSAGE_SERVING_PRELOAD", "1").strip().lower() not in ("0", "false")


def _wait_healthy(
    name: str, proc: subprocess.Popen[bytes], folder: Path, ready_timeout: float
) -> dict[str, Any]:
    import httpx

    state_file = folder / "state.json"
    deadline = time.monotonic() + ready_timeout
    state: dict[str, Any] | None = None
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EndpointError(
                    f"the model server of endpoint {name!r} exited with code {proc.returncode}"
                )
            if state is None and state_file.exists():
                state = _read_state(state_file)
            if state is not None:
                try:
                    answer = client.get(state["url"] + "/ping")
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    return state
                if answer is not None:
                    raise EndpointError(
                        f"endpoint {name!r} is unhealthy: /ping answered "
                        f"{answer.status_code} {answer.text[:500]}"
                    )
            time.sleep(0.02)
    raise EndpointError(f"endpoint {name!r} did not become healthy within {ready_timeout:.0f}s")


def _read_state(path: Path) -> dict[str, Any] | None:
    """Read a supervisor's ``state.json`` (``None`` while it is missing)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def _iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def describe_endpoint(name: str) -> dict[str, Any]:
    """Describe an endpoint in the shape of SageMaker's ``DescribeEndpoint``.

    A record whose server process has died is reported with ``EndpointStatus='Failed'``
    and a ``FailureReason`` saying so.

    Parameters
    ----------
    name : str
        The endpoint name.

    Returns
    -------
    dict
        ``EndpointName``, ``EndpointStatus``, ``CreationTime``, ``LastModifiedTime``,
        ``ProductionVariants``, optionally ``FailureReason``, and ``Local`` (url, pid,
        port, workers, folder, log, runtime, deploy time).

    Raises
    ------
    EndpointError
        If there is no such endpoint.
    """
    return endpoints.get(name).describe()


def list_endpoints() -> list[dict[str, Any]]:
    """Describe every local endpoint, oldest first (stale ones as ``Failed``).

    Returns
    -------
    list of dict
        One :func:`describe_endpoint` result per endpoint.
    """
    return [record.describe() for record in endpoints.all()]


def endpoint_log(name: str) -> Path:
    """Return the path of an endpoint's server log.

    Raises
    ------
    EndpointError
        If there is no such endpoint.
    """
    record = endpoints.get(name)
    return Path(record.log or _endpoint_dir(name) / "server.log")


def delete_endpoint(name: str) -> None:
    """Stop an endpoint's server and workers, remove its folder and its record.

    Parameters
    ----------
    name : str
        The endpoint name.

    Raises
    ------
    EndpointError
        If there is no such endpoint.
    """
    record = endpoints.get(name)
    folder = Path(record.dir or _endpoint_dir(name))
    state = _read_state(folder / "state.json") or {}
    if record.server is not None:
        record.server.stop(grace=10.0)
    orphans = [*state.get("workers", []), *([state["zygote"]] if state.get("zygote") else [])]
    for pid in orphans:  # left by a supervisor killed hard
        stop_process(pid, None, grace=2.0, must_contain=str(_WORKER_PATH))
    with _clients_lock:
        cached = _clients.pop(name, None)
    if cached is not None:
        cached[1].close()
    shutil.rmtree(folder, ignore_errors=True)
    endpoints.delete(name)


def _client(name: str) -> tuple[str, httpx.Client]:
    import httpx

    with _clients_lock:
        cached = _clients.get(name)
        if cached is None:
            record = endpoints.get(name)
            if record.status != "InService" or not record.url:
                raise EndpointError(f"endpoint {name!r} is {record.status}, not InService")
            cached = (record.url, httpx.Client(timeout=httpx.Timeout(70.0, connect=5.0)))
            _clients[name] = cached
        return cached


def invoke_endpoint(
    name: str,
    body: bytes | str,
    content_type: str = "application/json",
    accept: str | None = None,
) -> Invocation:
    """Send one request to ``/invocations`` (SageMaker's ``InvokeEndpoint``).

    Parameters
    ----------
    name : str
        The endpoint name.
    body : bytes or str
        The payload (``str`` is sent as UTF-8).
    content_type : str, default="application/json"
        The request's ``Content-Type``.
    accept : str, optional
        The ``Accept`` header; ``None`` lets the server use its default accept.

    Returns
    -------
    Invocation
        The response body (bytes) and its content type.

    Raises
    ------
    InvocationError
        If the model answered with a non-2xx status (status and body attached).
    EndpointError
        If there is no such endpoint or its server is not running.
    """
    import httpx

    url, client = _client(name)
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    data = body.encode("utf-8") if isinstance(body, str) else body
    try:
        answer = client.post(url + "/invocations", content=data, headers=headers)
    except httpx.TransportError as exc:
        with _clients_lock:
            _clients.pop(name, None)
        described = describe_endpoint(name)
        reason = described.get("FailureReason") or f"cannot reach {url}: {exc}"
        raise EndpointError(f"endpoint {name!r} ({described['EndpointStatus']}): {reason}") from exc
    if not 200 <= answer.status_code < 300:
        raise InvocationError(name, answer.status_code, answer.text)
    return Invocation(answer.content, answer.headers.get("content-type", ""))
