"""Kyma deployment records in fedsage's registry (kind ``kyma``).

A record remembers what a deploy created, so that ``fedsage kyma list | describe |
delete | manifests`` work from any process.  Record fields:

``name``, ``target`` (``"cluster"``; the local target adds ``"local"``), ``namespace``,
``image`` (pinned by digest), ``url``, ``replicas``, ``job_name``, ``kubeconfig`` (path),
``manifests`` (the applied objects, without the pull Secret), ``pull_secret`` (its name).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._home import registry
from ..errors import DeploymentError
from .manifests import KymaSpec

__all__ = ["KIND", "delete_deployment", "get_record", "list_records", "save_record"]

logger = logging.getLogger(__name__)
KIND = "kyma"


def save_record(
    spec: KymaSpec,
    objects: Sequence[dict[str, Any]],
    *,
    target: str = "cluster",
    kubeconfig: Path | None = None,
) -> dict[str, Any]:
    """Store (or replace) the record of a deployment; return it."""
    record = {
        "name": spec.name,
        "target": target,
        "namespace": spec.namespace,
        "image": spec.image,
        "url": spec.url,
        "host": spec.host,
        "replicas": spec.replicas,
        "job_name": spec.job_name,
        "kubeconfig": str(kubeconfig) if kubeconfig else None,
        "pull_secret": spec.pull_secret,
        "manifests": [o for o in objects if o.get("kind") != "Secret"],
    }
    reg = registry()
    reg.delete(KIND, spec.name)
    reg.add(KIND, spec.name, record)
    return record


def get_record(name: str) -> dict[str, Any]:
    """Return the record of deployment ``name``.

    Raises
    ------
    DeploymentError
        If there is none.
    """
    record = registry().get(KIND, name)
    if record is None:
        raise DeploymentError(f"no Kyma deployment named {name!r}; see `fedsage kyma list`")
    return record


def list_records() -> list[dict[str, Any]]:
    """Every Kyma deployment record, oldest first."""
    return registry().list(KIND)


def delete_deployment(name: str, kubeconfig: Path | str | None = None) -> list[str]:
    """Delete the cluster objects of ``name`` (not its Namespace), then its record.

    A local deployment (``target='local'``) has its gateway and replicas stopped instead
    (:func:`fedsage.kyma.local.delete_local`).

    Returns
    -------
    list of str
        The objects deleted (``"Deployment churn-…"``, …) or processes stopped.
    """
    record = get_record(name)
    deleted: list[str] = []
    if record.get("target") == "local":
        from .local import delete_local

        deleted = delete_local(name)
        logger.info("deleted local Kyma deployment %s (%s)", name, ", ".join(deleted))
        return deleted
    if record.get("target") == "cluster":
        from .apply import api_client, delete_objects

        client = api_client(kubeconfig or record.get("kubeconfig"))
        objects = list(record.get("manifests") or [])
        if record.get("pull_secret"):
            meta = {"name": record["pull_secret"], "namespace": record["namespace"]}
            objects.insert(1, {"apiVersion": "v1", "kind": "Secret", "metadata": meta})
        deleted = delete_objects(client, objects)
    registry().delete(KIND, name)
    logger.info("deleted Kyma deployment %s (%s)", name, ", ".join(deleted) or "record only")
    return deleted
