"""The local Kyma target: N local model servers behind one gateway URL on 127.0.0.1.

:func:`deploy` starts ``replicas`` independent model servers (each a local endpoint of
:mod:`fedsage.serving`, named ``<name>-r<i>``, with its own supervisor and port) and one
detached gateway (:mod:`fedsage.kyma.local.gateway`) in front of them, and records the
deployment in the registry (kind ``kyma``, ``target='local'``).  The URL it returns is
the gateway's base URL, ``http://127.0.0.1:<port>``, the local counterpart of
``https://<name>.<domain>``; the model answers at ``<url>/invocations`` and ``<url>/ping``.

Everything lives in ``FEDSAGE_HOME/kyma/<name>/`` (a copy of the archives, so that a
dead replica can be re-created, ``gateway.json``, ``gateway.state.json``, ``gateway.log``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ..._home import fedsage_home
from ..._process import ProcessIdentity, start_service
from ...errors import ConfigurationError, DeploymentError, EndpointError
from ...runtimes.base import Runtime
from ..names import validate_name
from ..records import (
    KymaDeployment,
    LocalState,
    find_record,
    forget_record,
    reserve_record,
    update_record,
)
from .replica import replica_names, start_replica
from .settings import GatewayConfig

__all__ = ["delete", "deploy", "describe"]

Progress = Callable[[str, dict[str, Any]], None]


def _folder(name: str) -> Path:
    return fedsage_home() / "kyma" / name


def _positive(value: Any, parameter: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{parameter} must be a positive number; got {value!r}")


def deploy(
    *,
    name: str,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    replicas: int = 1,
    progress: Progress | None = None,
    job_name: str | None = None,
    workers: int | None = None,
    timeout: float = 60.0,
    idle_timeout: float = 30.0,
    ready_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> str:
    """Start ``replicas`` model servers behind one local gateway; return the gateway URL.

    Parameters
    ----------
    name : str
        The deployment name (Kubernetes rules: <= 63 lowercase letters, digits, '-').
    model_tar, code_tar : pathlib.Path
        The job's ``model.tar.gz`` and ``sourcedir.tar.gz`` (``code_tar`` may be None).
    program : str or None
        The entry script (``SAGEMAKER_PROGRAM``).
    runtime : Runtime
        The runtime whose interpreter runs the workers (the one that trained the model).
    replicas : int, default=1
        ``initial_instance_count``: independent model servers.
    progress : callable, optional
        Called as ``progress(event, info)`` (``replica``, ``gateway``).
    job_name : str, optional
        The training job, recorded.
    workers : int, optional
        Workers per replica; default ``max(1, cpu_count // replicas)``.
    timeout : float, default=60.0
        Per-request timeout, in seconds.
    idle_timeout : float, default=30.0
        Seconds the gateway waits on a silent client connection (no request yet, a
        request stopped half-way, an answer not read) before dropping it.
    ready_timeout : float, default=60.0
        How long to wait for the gateway to answer ``/ping``.
    env : dict, optional
        Extra variables for the replicas' workers (a built-in algorithm's defaults).

    Returns
    -------
    str
        ``http://127.0.0.1:<port>``: POST to ``<url>/invocations``.

    Raises
    ------
    ConfigurationError
        If the name or the counts are invalid.
    DeploymentError
        If the name is taken or a replica or the gateway does not start (all that was
        started is stopped again).
    """
    validate_name(name)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigurationError(f"replicas must be a positive integer; got {replicas!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be a positive integer; got {workers!r}")
    for value, parameter in ((timeout, "timeout"), (idle_timeout, "idle_timeout")):
        _positive(value, parameter)
    emit = progress or (lambda event, info: None)
    names = replica_names(name, replicas)
    folder = _folder(name)
    record = KymaDeployment(
        name=name,
        target="local",
        status="Creating",
        replicas=replicas,
        job_name=job_name,
        replica_endpoints=names,
        local=LocalState(folder=str(folder), program=program, runtime=runtime.describe()),
    )
    reserve_record(record)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    gateway: ProcessIdentity | None = None
    try:
        shutil.copyfile(model_tar, folder / "model.tar.gz")
        if code_tar is not None:
            shutil.copyfile(code_tar, folder / "sourcedir.tar.gz")
        cfg = GatewayConfig(
            name=name,
            replicas=[],
            model_tar=str(folder / "model.tar.gz"),
            code_tar=str(folder / "sourcedir.tar.gz") if code_tar is not None else None,
            program=program,
            runtime=runtime.to_dict(),
            workers=workers or max(1, (os.cpu_count() or 1) // replicas),
            timeout=timeout,
            idle_timeout=idle_timeout,
            state_file=str(folder / "gateway.state.json"),
            env=dict(env or {}),
        )
        with ThreadPoolExecutor(max_workers=min(replicas, 4)) as pool:
            futures = [pool.submit(start_replica, n, cfg, runtime) for n in names]
            cfg.replicas = [f.result() for f in futures]
        for replica in cfg.replicas:
            emit("replica", replica.to_dict())
        url, gateway = _start_gateway(cfg, folder, ready_timeout)
        emit("gateway", {"url": url, "pid": gateway.pid})
        assert record.local is not None
        record.status, record.url, record.host = "InService", url, url.split("://", 1)[1]
        record.local.gateway = gateway
        record.local.log = str(folder / "gateway.log")
        record.local.replicas = cfg.replicas
        update_record(record)
    except BaseException as exc:
        _teardown(name, names, gateway)  # nothing of a failed deployment keeps running
        if isinstance(exc, EndpointError | OSError):
            raise DeploymentError(f"local Kyma deployment {name!r} failed: {exc}") from exc
        raise
    return url


def _start_gateway(
    cfg: GatewayConfig, folder: Path, ready_timeout: float
) -> tuple[str, ProcessIdentity]:
    (folder / "gateway.json").write_text(cfg.to_json(), encoding="utf-8")
    proc = start_service("fedsage.kyma.local.gateway", folder, "gateway.json", "gateway.log")
    gateway = ProcessIdentity.of(proc.pid)
    state_file = Path(cfg.state_file or folder / "gateway.state.json")
    deadline = time.monotonic() + ready_timeout
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (folder / "gateway.log").read_text(errors="replace")[-2000:]
                raise DeploymentError(f"the gateway exited with code {proc.returncode}:\n{tail}")
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(state_file.read_text(encoding="utf-8"))
                url = f"http://{cfg.host}:{state['port']}"
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url + "/ping").status_code == 200:
                        return url, gateway
            time.sleep(0.05)
    gateway.stop(grace=5.0)
    _reap(gateway.pid)
    raise DeploymentError(f"the gateway did not answer /ping within {ready_timeout:.0f} s")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _teardown(name: str, endpoints: list[str], gateway: ProcessIdentity | None = None) -> None:
    from ...serving import delete_endpoint

    if gateway is not None:
        gateway.stop(grace=30.0)  # it lets a replica restart under way finish first
        _reap(gateway.pid)
    for endpoint in endpoints:
        with contextlib.suppress(EndpointError):
            delete_endpoint(endpoint)
    shutil.rmtree(_folder(name), ignore_errors=True)
    forget_record(name)


def _local_record(name: str) -> KymaDeployment:
    record = find_record(name)
    if record is None or record.target != "local":
        raise DeploymentError(f"no local Kyma deployment named {name!r}; see `fedsage kyma list`")
    return record


def delete(name: str) -> list[str]:
    """Stop a local deployment's gateway, then its replicas (by PID), and forget it.

    Parameters
    ----------
    name : str
        The deployment.

    Returns
    -------
    list of str
        What was stopped (``"gateway pid 123"``, ``"replica churn-r0"``).

    Raises
    ------
    DeploymentError
        If there is no such local deployment.
    """
    record = _local_record(name)
    gateway = record.local.gateway if record.local is not None else None
    endpoints = list(record.replica_endpoints)
    _teardown(name, endpoints, gateway)
    done = [] if gateway is None else [f"gateway pid {gateway.pid}"]
    return done + [f"replica {e}" for e in endpoints]


def describe(name: str) -> KymaDeployment:
    """The record of a local deployment with live status of its gateway and replicas.

    Parameters
    ----------
    name : str
        The deployment.

    Returns
    -------
    KymaDeployment
        ``status`` is ``Creating``, ``InService``, ``Degraded`` (a replica is not in
        service) or ``Failed`` (the gateway is gone); each replica's ``status`` is its
        ``EndpointStatus`` (``Missing`` when the endpoint is gone).

    Raises
    ------
    DeploymentError
        If there is no such local deployment.
    """
    from ...serving import describe_endpoint

    record = _local_record(name)
    if record.status == "Creating" or record.local is None:
        return record
    gateway = record.local.gateway
    for replica in record.local.replicas:
        try:
            replica.status = describe_endpoint(replica.endpoint)["EndpointStatus"]
        except EndpointError:
            replica.status = "Missing"
    if gateway is None or not gateway.alive():
        record.status = "Failed"
    elif all(r.status == "InService" for r in record.local.replicas):
        record.status = "InService"
    else:
        record.status = "Degraded"
    return record
