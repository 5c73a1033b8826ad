"""What the local gateway serves: :class:`GatewayConfig` (``gateway.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..records import ReplicaRecord

__all__ = ["GatewayConfig"]


@dataclass
class GatewayConfig:
    """What the gateway serves; JSON-serialisable (``gateway.json``).

    Attributes
    ----------
    name : str
        The Kyma deployment name (its ``kyma`` registry record).
    replicas : list of ReplicaRecord
        One per replica (endpoint, host, port, process).
    model_tar, code_tar, program : str or None
        The archives and entry script a replica is (re)created from.
    runtime : dict
        The runtime as ``Runtime.to_dict()`` gives it.
    workers : int
        Worker processes per replica.
    host, port : str, int
        Where the gateway listens (port 0 picks a free port).
    timeout : float
        Per-request timeout towards a replica, in seconds.
    max_body : int
        Largest accepted request body in bytes.
    health_interval : float
        Seconds between active health checks and PID checks.
    idle_timeout : float
        Seconds a client connection may stay silent: waiting for a request, or in the
        middle of sending one, or not reading the answer.  Then it is dropped.
    state_file : str or None
        Where the gateway writes its PID and port.
    env : dict
        Extra variables for the replicas' workers (a built-in algorithm's defaults).
    """

    name: str
    replicas: list[ReplicaRecord]
    model_tar: str
    code_tar: str | None
    program: str | None
    runtime: dict[str, Any]
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = 60.0
    max_body: int = 6 * 1024 * 1024
    health_interval: float = 0.5
    idle_timeout: float = 30.0
    state_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise to JSON text."""
        data = asdict(self)
        data["replicas"] = [replica.to_dict() for replica in self.replicas]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GatewayConfig:
        """Build from :meth:`to_json` output."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}
        data["replicas"] = [ReplicaRecord.from_dict(r) for r in data.get("replicas") or []]
        return cls(**data)
