"""Kyma deployment records in fedsage's registry (kind ``kyma``), as typed data.

A record remembers what a deploy created, so that ``fedsage kyma list | describe |
delete | manifests`` work from any process.  :class:`KymaDeployment` is the record of
either target: a cluster deployment keeps its namespace, image (pinned by digest),
kubeconfig and applied manifests; a local one keeps :class:`LocalState` (the folder,
the gateway process, every replica with its process).  Processes are kept as
:class:`~fedsage._process.ProcessIdentity` (PID + start time).

Records written before this module was typed (local ones with ``gateway_pid`` /
``gateway_pid_start`` / ``dir`` and replicas with ``pid`` / ``pid_start``) are read by
:meth:`KymaDeployment.from_dict` as well.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._home import registry
from .._process import ProcessIdentity
from ..errors import DeploymentError

__all__ = [
    "KIND",
    "KymaDeployment",
    "LocalState",
    "ReplicaRecord",
    "find_record",
    "forget_record",
    "get_record",
    "list_records",
    "reserve_record",
    "save_record",
    "update_record",
]

logger = logging.getLogger(__name__)
KIND = "kyma"


def _process(data: Mapping[str, Any], key: str, pid_key: str, start_key: str) -> Any:
    """A ProcessIdentity from ``data[key]``, or from the old flat ``pid`` / ``start`` keys."""
    if isinstance(data.get(key), Mapping):
        return ProcessIdentity.from_dict(dict(data[key]))
    if data.get(pid_key) is None:
        return None
    start = data.get(start_key)
    return ProcessIdentity(int(data[pid_key]), None if start is None else str(start))


def _identity(process: ProcessIdentity | None) -> dict[str, Any] | None:
    return None if process is None else process.to_dict()


@dataclass
class ReplicaRecord:
    """One local replica: a local endpoint of :mod:`fedsage.serving`.

    Attributes
    ----------
    endpoint : str
        The endpoint name (``<name>-r<i>``).
    host, port : str, int
        Where it listens.
    process : ProcessIdentity or None
        Its supervisor process.
    restarts : int, default=0
        How often the gateway re-created it.
    status : str or None, default=None
        Live ``EndpointStatus``, filled in by ``describe`` only (not stored).
    """

    endpoint: str
    host: str
    port: int
    process: ProcessIdentity | None
    restarts: int = 0
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``status`` only when known)."""
        data: dict[str, Any] = {
            "endpoint": self.endpoint,
            "host": self.host,
            "port": self.port,
            "process": _identity(self.process),
            "restarts": self.restarts,
        }
        if self.status is not None:
            data["status"] = self.status
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaRecord:
        """Build from :meth:`to_dict` output, or from the old ``pid``/``pid_start`` shape."""
        return cls(
            endpoint=str(data["endpoint"]),
            host=str(data.get("host") or "127.0.0.1"),
            port=int(data["port"]),
            process=_process(data, "process", "pid", "pid_start"),
            restarts=int(data.get("restarts") or 0),
            status=data.get("status") or data.get("EndpointStatus"),
        )


@dataclass
class LocalState:
    """What a local deployment runs: its folder, gateway and replicas.

    Attributes
    ----------
    folder : str
        ``FEDSAGE_HOME/kyma/<name>`` (archives, ``gateway.json``, ``gateway.log``).
    gateway : ProcessIdentity or None
        The gateway process.
    log : str or None
        The gateway's log file.
    replicas : list of ReplicaRecord
        One per replica, in order.
    program : str or None
        The entry script.
    runtime : dict
        ``Runtime.describe()`` of the runtime serving the model.
    """

    folder: str
    gateway: ProcessIdentity | None = None
    log: str | None = None
    replicas: list[ReplicaRecord] = field(default_factory=list)
    program: str | None = None
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def restarts(self) -> int:
        """Replica restarts so far, over all replicas."""
        return sum(replica.restarts for replica in self.replicas)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "folder": self.folder,
            "gateway": _identity(self.gateway),
            "log": self.log,
            "replicas": [replica.to_dict() for replica in self.replicas],
            "restarts": self.restarts,
            "program": self.program,
            "runtime": dict(self.runtime),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocalState:
        """Build from :meth:`to_dict` output or the old ``dir`` / ``gateway_pid`` shape."""
        return cls(
            folder=str(data.get("folder") or data.get("dir") or ""),
            gateway=_process(data, "gateway", "gateway_pid", "gateway_pid_start"),
            log=data.get("log"),
            replicas=[ReplicaRecord.from_dict(r) for r in data.get("replicas") or []],
            program=data.get("program"),
            runtime=dict(data.get("runtime") or {}),
        )


@dataclass
class KymaDeployment:
    """The record of one Kyma deployment (cluster or local).

    Attributes
    ----------
    name : str
        The deployment name (see :func:`fedsage.kyma.names.validate_name`).
    target : {"cluster", "local"}
        Where it runs.
    url, host : str or None
        The base URL (``None`` on a cluster whose domain is unknown) and the host.
    replicas : int, default=1
        ``initial_instance_count``.
    job_name : str or None
        The training job the model comes from.
    status : str or None
        Local: ``Creating`` or ``InService`` (``describe`` adds ``Degraded``, ``Failed``).
    namespace, image, kubeconfig, pull_secret : str or None
        Cluster: where it was applied, the image pinned by digest, the kubeconfig used
        and the name of the image pull Secret.
    manifests : list of dict
        Cluster: the applied objects, without the pull Secret (it holds a token).
    replica_endpoints : list of str
        Local: the replicas' endpoint names, known before they start (for clean-up).
    local : LocalState or None
        Local: the processes.
    """

    name: str
    target: str
    url: str | None = None
    host: str | None = None
    replicas: int = 1
    job_name: str | None = None
    status: str | None = None
    namespace: str | None = None
    image: str | None = None
    kubeconfig: str | None = None
    pull_secret: str | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)
    replica_endpoints: list[str] = field(default_factory=list)
    local: LocalState | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the registry's stored form)."""
        return {
            "name": self.name,
            "target": self.target,
            "status": self.status,
            "url": self.url,
            "host": self.host,
            "replicas": self.replicas,
            "job_name": self.job_name,
            "namespace": self.namespace,
            "image": self.image,
            "kubeconfig": self.kubeconfig,
            "pull_secret": self.pull_secret,
            "manifests": [dict(o) for o in self.manifests if o.get("kind") != "Secret"],
            "replica_endpoints": list(self.replica_endpoints),
            "local": None if self.local is None else self.local.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KymaDeployment:
        """Build from :meth:`to_dict` output, including records of older fedsage versions."""
        local = data.get("local")
        return cls(
            name=str(data["name"]),
            target=str(data.get("target") or "cluster"),
            url=data.get("url"),
            host=data.get("host"),
            replicas=int(data.get("replicas") or 1),
            job_name=data.get("job_name"),
            status=data.get("status"),
            namespace=data.get("namespace"),
            image=data.get("image"),
            kubeconfig=data.get("kubeconfig"),
            pull_secret=data.get("pull_secret"),
            manifests=[dict(o) for o in data.get("manifests") or []],
            replica_endpoints=[str(e) for e in data.get("replica_endpoints") or []],
            local=LocalState.from_dict(local) if isinstance(local, Mapping) else None,
        )


def save_record(deployment: KymaDeployment) -> KymaDeployment:
    """Store (or replace) the record of a deployment; return it."""
    reg = registry()
    reg.delete(KIND, deployment.name)
    reg.add(KIND, deployment.name, deployment.to_dict())
    return deployment


def reserve_record(deployment: KymaDeployment) -> None:
    """Add a new record, claiming its name.

    Raises
    ------
    DeploymentError
        If a deployment of that name exists.
    """
    try:
        registry().add(KIND, deployment.name, deployment.to_dict())
    except KeyError:
        raise DeploymentError(
            f"a Kyma deployment named {deployment.name!r} already exists; delete it first "
            f"with: fedsage kyma delete {deployment.name}"
        ) from None


def update_record(deployment: KymaDeployment) -> None:
    """Overwrite an existing record with ``deployment`` (no-op if it was deleted meanwhile)."""
    changes = deployment.to_dict()
    del changes["name"]  # the key; it does not change
    try:
        registry().update(KIND, deployment.name, **changes)
    except KeyError:
        logger.info("the record of %s was deleted meanwhile; not updated", deployment.name)


def find_record(name: str) -> KymaDeployment | None:
    """The record of deployment ``name``, or ``None``."""
    data = registry().get(KIND, name)
    return None if data is None else KymaDeployment.from_dict(data)


def get_record(name: str) -> KymaDeployment:
    """Return the record of deployment ``name``.

    Raises
    ------
    DeploymentError
        If there is none.
    """
    record = find_record(name)
    if record is None:
        raise DeploymentError(f"no Kyma deployment named {name!r}; see `fedsage kyma list`")
    return record


def list_records() -> list[KymaDeployment]:
    """Every Kyma deployment record, oldest first."""
    return [KymaDeployment.from_dict(data) for data in registry().list(KIND)]


def forget_record(name: str) -> None:
    """Remove the record of ``name`` (if any)."""
    registry().delete(KIND, name)
