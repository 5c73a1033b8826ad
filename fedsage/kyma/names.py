"""Names of Kyma deployments: one name for the repository, Deployment, Service, APIRule,
host label and local replicas.

:func:`validate_name` checks a name against every rule those objects impose;
:func:`derive_name` makes one from a training job or endpoint name, as fedml-aws did.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ..errors import ConfigurationError

__all__ = ["LABEL_RE", "REPOSITORY_RE", "derive_name", "validate_name"]

# An RFC 1035 label: Service names, host labels, namespaces.
LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# A repository name of the OCI distribution spec.
REPOSITORY_RE = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TIMESTAMP_LEN = len("-2024-01-31-23-59-59")


def validate_name(name: str) -> str:
    """Check ``name`` for every object fedsage names after it; return it.

    The rules: an RFC 1035 label (Service names: at most 63 characters, lowercase letters,
    digits and ``-``, starting with a letter) that is also a registry repository name.

    Parameters
    ----------
    name : str
        The deployment name.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    ConfigurationError
        Naming the rule that ``name`` breaks.
    """
    if (
        not isinstance(name, str)
        or len(name) > 63
        or not LABEL_RE.fullmatch(name)
        or not REPOSITORY_RE.fullmatch(name)
    ):
        raise ConfigurationError(
            f"the Kyma deployment name {name!r} is not valid: use at most 63 lowercase "
            "letters, digits and '-', starting with a letter and ending with a letter or digit"
        )
    return name


def derive_name(
    job_name: str | None = None,
    endpoint_name: str | None = None,
    now: datetime | None = None,
) -> str:
    """Name a deployment the way fedml-aws did, within Kubernetes' limits.

    The training job's name loses its trailing ``-<digits>`` groups (the timestamp the
    job got) and gains a new ``-YYYY-mm-dd-HH-MM-SS``; an ``endpoint_name`` is used as
    given, plus the timestamp.  The result is lower-cased and shortened to 63
    characters.

    Parameters
    ----------
    job_name : str, optional
        The training job.
    endpoint_name : str, optional
        A name chosen by the caller; wins over ``job_name``.
    now : datetime, optional
        The time stamped into the name (default: now, UTC).

    Returns
    -------
    str
        A name :func:`validate_name` accepts.

    Raises
    ------
    ConfigurationError
        If neither name is given, or nothing valid is left of them.

    Examples
    --------
    >>> derive_name("churn-2024-05-01-10-00-00-123", now=datetime(2025, 1, 2, 3, 4, 5))
    'churn-2025-01-02-03-04-05'
    """
    if endpoint_name:
        stem = endpoint_name
    elif job_name:
        stem = re.sub(r"(-\d+)+$", "", job_name)
    else:
        raise ConfigurationError("derive_name needs a job_name or an endpoint_name")
    stem = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d-%H-%M-%S")
    stem = stem[: 63 - _TIMESTAMP_LEN].rstrip("-")
    return validate_name(f"{stem}-{stamp}")
