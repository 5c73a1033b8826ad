"""Deleting a Kyma deployment of either target, from its record.

The one place above both targets: the records (core) do not know them, and neither
target knows the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .records import forget_record, get_record

__all__ = ["delete_deployment"]

logger = logging.getLogger(__name__)


def delete_deployment(name: str, kubeconfig: Path | str | None = None) -> list[str]:
    """Delete a deployment: its cluster objects (not the Namespace) or local processes.

    Parameters
    ----------
    name : str
        The deployment.
    kubeconfig : path, optional
        For a cluster deployment: the kubeconfig to use instead of the recorded one.

    Returns
    -------
    list of str
        The objects deleted (``"Deployment churn-…"``, …) or processes stopped.

    Raises
    ------
    DeploymentError
        If there is no such deployment, or the cluster refuses a delete.
    """
    record = get_record(name)
    if record.target == "local":
        from .local import delete

        deleted = delete(name)
        logger.info("deleted local Kyma deployment %s (%s)", name, ", ".join(deleted))
        return deleted
    deleted = []
    if record.target == "cluster":
        from .cluster import delete as delete_cluster

        deleted = delete_cluster(record, kubeconfig)
    forget_record(name)
    logger.info("deleted Kyma deployment %s (%s)", name, ", ".join(deleted) or "record only")
    return deleted
