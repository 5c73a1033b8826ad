"""Local replicas: each one a local endpoint of :mod:`fedsage.serving`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..._process import ProcessIdentity
from ...runtimes.base import Runtime
from ..records import ReplicaRecord
from .settings import GatewayConfig

__all__ = ["replica_names", "start_replica"]


def replica_names(name: str, replicas: int) -> list[str]:
    """The local endpoint names of a deployment's replicas (``<name>-r<i>``, <= 63 chars)."""
    stem = name
    if len(name) + len(f"-r{replicas - 1}") > 63:
        stem = name[:50].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return [f"{stem}-r{i}" for i in range(replicas)]


def start_replica(endpoint: str, cfg: GatewayConfig, runtime: Runtime) -> ReplicaRecord:
    """Start one replica (a local endpoint) for ``cfg``; return its record.

    Raises
    ------
    EndpointError
        If the model server does not start.
    """
    from ...serving import create_endpoint

    described = create_endpoint(
        endpoint,
        model_tar=Path(cfg.model_tar),
        code_tar=Path(cfg.code_tar) if cfg.code_tar else None,
        program=cfg.program,
        runtime=runtime,
        workers=cfg.workers,
        timeout=cfg.timeout,
        max_body=cfg.max_body,
        env=dict(cfg.env),
    )
    local = described["Local"]
    return ReplicaRecord(
        endpoint=endpoint,
        host=cfg.host,
        port=int(local["port"]),
        process=ProcessIdentity.of(int(local["pid"])),
    )
