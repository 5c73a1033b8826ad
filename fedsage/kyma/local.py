"""The local Kyma target: N local model servers behind one gateway URL on 127.0.0.1.

``deploy_local`` starts ``replicas`` independent model servers (each a local endpoint of
:mod:`fedsage.serving`, named ``<name>-r<i>``, with its own supervisor and port) and one
detached gateway (:mod:`fedsage.kyma.gateway`) in front of them, and records the
deployment in the registry (kind ``kyma``, ``target='local'``).  The URL it returns is
the gateway's base URL, ``http://127.0.0.1:<port>``, the local counterpart of
``https://<name>.<domain>``; the model answers at ``<url>/invocations`` and ``<url>/ping``.

Everything lives in ``FEDSAGE_HOME/kyma/<name>/`` (a copy of the archives, so that a
dead replica can be re-created, ``gateway.json``, ``gateway.state.json``, ``gateway.log``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .._home import fedsage_home, registry
from .._process import alive, process_start, start_service, stop_process
from ..errors import ConfigurationError, DeploymentError, EndpointError
from ..runtimes.base import Runtime
from .gateway import GatewayConfig
from .manifests import validate_name
from .records import KIND

__all__ = ["delete_local", "deploy_local", "describe_local", "replica_names"]

Progress = Callable[[str, dict[str, Any]], None]


def _folder(name: str) -> Path:
    return fedsage_home() / "kyma" / name


def replica_names(name: str, replicas: int) -> list[str]:
    """The local endpoint names of a deployment's replicas (``<name>-r<i>``, <= 63 chars)."""
    stem = name
    if len(name) + len(f"-r{replicas - 1}") > 63:
        stem = name[:50].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return [f"{stem}-r{i}" for i in range(replicas)]


def create_replica(endpoint: str, cfg: GatewayConfig, runtime: Runtime) -> dict[str, Any]:
    """Start one replica (a local endpoint) for ``cfg``; return its record entry."""
    from ..serving import create_endpoint

    described = create_endpoint(
        endpoint,
        model_tar=Path(cfg.model_tar),
        code_tar=Path(cfg.code_tar) if cfg.code_tar else None,
        program=cfg.program,
        runtime=runtime,
        workers=cfg.workers,
        timeout=cfg.timeout,
        max_body=cfg.max_body,
    )
    pid = int(described["Local"]["pid"])
    port = int(described["Local"]["port"])
    return {
        "endpoint": endpoint,
        "host": cfg.host,
        "port": port,
        "pid": pid,
        "pid_start": process_start(pid),
        "restarts": 0,
    }


def deploy_local(
    name: str,
    *,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    replicas: int = 1,
    workers: int | None = None,
    job_name: str | None = None,
    timeout: float = 60.0,
    ready_timeout: float = 60.0,
    progress: Progress | None = None,
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
        The runtime whose interpreter runs the workers.
    replicas : int, default=1
        ``initial_instance_count``: independent model servers.
    workers : int, optional
        Workers per replica; default ``max(1, cpu_count // replicas)``.
    job_name : str, optional
        The training job, recorded.
    timeout : float, default=60.0
        Per-request timeout, in seconds.
    ready_timeout : float, default=60.0
        How long to wait for the gateway to answer ``/ping``.
    progress : callable, optional
        Called as ``progress(event, info)`` (``replica``, ``gateway``).

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
    if not isinstance(replicas, int) or replicas < 1 or (workers is not None and workers < 1):
        raise ConfigurationError("replicas and workers must be positive integers")
    emit = progress or (lambda event, info: None)
    reg = registry()
    try:
        reg.add(KIND, name, {"name": name, "target": "local", "status": "Creating"})
    except KeyError:
        raise DeploymentError(
            f"a Kyma deployment named {name!r} already exists; delete it first with: "
            f"fedsage kyma delete {name}"
        ) from None
    folder = _folder(name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = replica_names(name, replicas)
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
            state_file=str(folder / "gateway.state.json"),
        )
        reg.update(KIND, name, replica_endpoints=names, local={"dir": str(folder)})
        with ThreadPoolExecutor(max_workers=min(replicas, 4)) as pool:
            futures = [pool.submit(create_replica, n, cfg, runtime) for n in names]
            cfg.replicas = [f.result() for f in futures]
        for info in cfg.replicas:
            emit("replica", info)
        url, pid = _start_gateway(cfg, folder, ready_timeout)
        emit("gateway", {"url": url, "pid": pid})
    except BaseException as exc:
        _teardown(name, names)
        if isinstance(exc, (EndpointError, OSError)):
            raise DeploymentError(f"local Kyma deployment {name!r} failed: {exc}") from exc
        raise
    reg.update(
        KIND,
        name,
        status="InService",
        namespace=None,
        image=None,
        url=url,
        host=url.split("://", 1)[1],
        replicas=replicas,
        job_name=job_name,
        kubeconfig=None,
        pull_secret=None,
        manifests=[],
        local={
            "dir": str(folder),
            "gateway_pid": pid,
            "gateway_pid_start": process_start(pid),
            "log": str(folder / "gateway.log"),
            "replicas": cfg.replicas,
            "restarts": 0,
            "program": program,
            "runtime": runtime.describe(),
        },
    )
    return url


def _start_gateway(cfg: GatewayConfig, folder: Path, ready_timeout: float) -> tuple[str, int]:
    (folder / "gateway.json").write_text(cfg.to_json(), encoding="utf-8")
    proc = start_service("fedsage.kyma.gateway", folder, "gateway.json", "gateway.log")
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
                        return url, proc.pid
            time.sleep(0.05)
    stop_process(proc.pid, None, grace=5.0)
    raise DeploymentError(f"the gateway did not answer /ping within {ready_timeout:.0f} s")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _teardown(
    name: str,
    endpoints: list[str],
    gateway: tuple[int, str | None] | None = None,
) -> None:
    from ..serving import delete_endpoint

    if gateway is not None:
        stop_process(gateway[0], gateway[1], grace=30.0)
        _reap(gateway[0])
    for endpoint in endpoints:
        with contextlib.suppress(EndpointError):
            delete_endpoint(endpoint)
    shutil.rmtree(_folder(name), ignore_errors=True)
    registry().delete(KIND, name)


def delete_local(name: str) -> list[str]:
    """Stop a local deployment's gateway, then its replicas (by PID), and forget it.

    Returns
    -------
    list of str
        What was stopped (``"gateway pid 123"``, ``"replica churn-r0"``).

    Raises
    ------
    DeploymentError
        If there is no such local deployment.
    """
    record = registry().get(KIND, name)
    if record is None or record.get("target") != "local":
        raise DeploymentError(f"no local Kyma deployment named {name!r}; see `fedsage kyma list`")
    local = record.get("local") or {}
    endpoints = list(record.get("replica_endpoints") or [])
    gateway = None
    done = []
    if local.get("gateway_pid"):
        gateway = (int(local["gateway_pid"]), local.get("gateway_pid_start"))
        done.append(f"gateway pid {gateway[0]}")
    _teardown(name, endpoints, gateway)
    return done + [f"replica {e}" for e in endpoints]


def describe_local(name: str) -> dict[str, Any]:
    """The record of a local deployment with live status of its gateway and replicas.

    Returns
    -------
    dict
        The record plus ``status`` (``InService``, ``Degraded`` or ``Failed``) and, per
        replica, ``EndpointStatus``.
    """
    from ..serving import describe_endpoint

    record = registry().get(KIND, name)
    if record is None or record.get("target") != "local":
        raise DeploymentError(f"no local Kyma deployment named {name!r}; see `fedsage kyma list`")
    local = record.get("local") or {}
    gateway_ok = bool(local.get("gateway_pid")) and alive(
        int(local["gateway_pid"]), local.get("gateway_pid_start")
    )
    states = []
    for replica in local.get("replicas") or []:
        try:
            status = describe_endpoint(replica["endpoint"])["EndpointStatus"]
        except EndpointError:
            status = "Missing"
        replica["EndpointStatus"] = status
        states.append(status)
    if record.get("status") == "Creating":
        record["status"] = "Creating"
    elif not gateway_ok:
        record["status"] = "Failed"
    else:
        record["status"] = "InService" if all(s == "InService" for s in states) else "Degraded"
    return record
