"""The Kubernetes objects of a Kyma deployment, built as plain data.

:func:`build_manifests` returns the Namespace (in the Istio mesh), the Service, the
Deployment and the ``gateway.kyma-project.io/v2`` APIRule for a :class:`KymaSpec`;
:func:`pull_secret_manifest` the image pull Secret, kept apart because it holds a
credential.  Every object validates against the official Kubernetes schemas (and the
APIRule against :data:`APIRULE_SCHEMA`); the tests check that.

Access: the APIRule uses ``jwt`` rules when an issuer and a JWKS URI are configured,
narrowed by ``jwt.authorizations`` to tokens for given audiences and with given scopes
when those are configured.  ``noAuth`` (fedml-aws's behaviour: the model open to the
internet) needs the explicit ``allow_unauthenticated=True`` and is logged as a warning.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigurationError, DeploymentError, import_extra
from ..names import LABEL_RE, validate_name
from ..records import KymaDeployment

__all__ = [
    "APIRULE_SCHEMA",
    "DEFAULT_RESOURCES",
    "KymaSpec",
    "build_manifests",
    "cluster_domain",
    "deployment_record",
    "pull_secret_manifest",
    "to_yaml",
]

logger = logging.getLogger(__name__)

APIRULE_SCHEMA = Path(__file__).parent.parent / "schemas" / "apirule-v2.json"
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"memory": "2Gi"},
}
def cluster_domain(kubeconfig: Mapping[str, Any], context: str | None = None) -> str | None:
    """Return the cluster's public domain from a kubeconfig, or ``None``.

    Kyma on BTP serves its API at ``https://api.<domain>``; workloads are exposed at
    ``https://<host>.<domain>``.  Servers not named ``api.…`` give ``None`` (then the
    APIRule uses a short host and the Gateway supplies the domain).
    """
    context = context or kubeconfig.get("current-context")
    contexts = {c.get("name"): c.get("context", {}) for c in kubeconfig.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster", {}) for c in kubeconfig.get("clusters") or []}
    cluster_name = contexts.get(context, {}).get("cluster") if context else None
    cluster = clusters.get(cluster_name) if cluster_name else None
    if cluster is None and len(clusters) == 1:
        cluster = next(iter(clusters.values()))
    host = urlsplit((cluster or {}).get("server", "")).hostname or ""
    return host[4:] if host.startswith("api.") and host.count(".") >= 2 else None


@dataclass(frozen=True)
class KymaSpec:
    """Everything the manifests need.

    Attributes
    ----------
    name : str
        Deployment, Service, APIRule and host label (see :func:`validate_name`).
    image : str
        ``registry/repository@sha256:...`` (pinned by digest).
    namespace : str, default="fedsage"
    replicas : int, default=1
        ``initial_instance_count``.
    env : mapping, default={}
        Container environment (``SAGEMAKER_PROGRAM``, ...).
    command : sequence of str, default=("serve",)
    port : int, default=8080
    workers : int, default=2
        ``SAGEMAKER_MODEL_SERVER_WORKERS`` (the server's default is the node's CPUs).
    pull_secret : str or None, default=None
        Name of the image pull Secret.
    domain : str or None, default=None
        The cluster domain; ``None`` gives a short host.
    gateway : str, default="kyma-system/kyma-gateway"
    timeout : int, default=60
        The APIRule's request timeout in seconds (1-3900).
    jwt_issuer, jwks_uri : str or None
        Configure ``jwt`` access rules (both needed).
    jwt_audiences : sequence of str, default=()
        Accept only tokens issued for one of these audiences (``aud`` claim).
    jwt_scopes : sequence of str, default=()
        Accept only tokens that carry every one of these scopes.
    allow_unauthenticated : bool, default=False
        Explicit opt-in for ``noAuth`` rules.
    resources : mapping, default=DEFAULT_RESOURCES
    job_name : str or None
        The training job, recorded as an annotation.
    """

    name: str
    image: str
    namespace: str = "fedsage"
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    command: Sequence[str] = ("serve",)
    port: int = 8080
    workers: int = 2
    pull_secret: str | None = None
    domain: str | None = None
    gateway: str = "kyma-system/kyma-gateway"
    timeout: int = 60
    jwt_issuer: str | None = None
    jwks_uri: str | None = None
    jwt_audiences: Sequence[str] = ()
    jwt_scopes: Sequence[str] = ()
    allow_unauthenticated: bool = False
    resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: dict(DEFAULT_RESOURCES)
    )
    job_name: str | None = None

    @property
    def host(self) -> str:
        """The APIRule host: ``name.domain``, or the short host ``name``."""
        return f"{self.name}.{self.domain}" if self.domain else self.name

    @property
    def url(self) -> str | None:
        """The public base URL, when the domain is known."""
        return f"https://{self.host}" if self.domain else None

    def check(self) -> None:
        """Raise :class:`ConfigurationError` on a value the cluster would refuse."""
        validate_name(self.name)
        if not LABEL_RE.fullmatch(self.namespace) or len(self.namespace) > 63:
            raise ConfigurationError(f"namespace {self.namespace!r} is not a valid DNS label")
        if "@sha256:" not in self.image:
            raise ConfigurationError(
                f"image {self.image!r} is not pinned by digest; push it first and pass "
                "registry/repository@sha256:<digest>"
            )
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise ConfigurationError(f"replicas must be a positive int; got {self.replicas!r}")
        if not 1 <= self.timeout <= 3900:
            raise ConfigurationError(f"timeout must be within 1..3900 s; got {self.timeout}")
        if bool(self.jwt_issuer) != bool(self.jwks_uri):
            raise ConfigurationError("jwt access needs both jwt_issuer and jwks_uri")
        narrowing = ((self.jwt_audiences, "jwt_audiences"), (self.jwt_scopes, "jwt_scopes"))
        for values, parameter in narrowing:
            if isinstance(values, str) or any(
                not isinstance(v, str) or not v.strip() or v != v.strip() for v in values
            ):
                raise ConfigurationError(
                    f"{parameter} must be a list of non-empty strings without surrounding "
                    f"spaces; got {values!r}"
                )
            if values and not self.jwt_issuer:
                raise ConfigurationError(
                    f"{parameter} narrow jwt access: set jwt_issuer and jwks_uri as well"
                )
        if not self.jwt_issuer and not self.allow_unauthenticated:
            raise ConfigurationError(
                "the APIRule needs an access rule: set jwt_issuer and jwks_uri (the identity "
                "provider's issuer and JWKS URI), or allow_unauthenticated=True to expose the "
                "model to anyone on the internet as fedml-aws did"
            )


def _meta(spec: KymaSpec, kind_labels: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
    if kind_labels:
        meta["labels"] = {"app": spec.name, "app.kubernetes.io/managed-by": "fedsage"}
    if spec.job_name:
        meta["annotations"] = {"fedsage.sap/training-job": spec.job_name}
    return meta


def _probe(spec: KymaSpec, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/ping", "port": spec.port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _deployment(spec: KymaSpec) -> dict[str, Any]:
    env = {**spec.env, "SAGEMAKER_MODEL_SERVER_WORKERS": str(spec.workers)}
    container: dict[str, Any] = {
        "name": "model",
        "image": spec.image,
        "command": list(spec.command),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {k: dict(v) for k, v in spec.resources.items()},
        "startupProbe": _probe(spec, 5, 10, 60),
        "readinessProbe": _probe(spec, 10, 5, 3),
        "livenessProbe": _probe(spec, 20, 5, 6),
    }
    pod: dict[str, Any] = {"containers": [container]}
    if spec.pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.pull_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": spec.name}},
            "template": {"metadata": {"labels": {"app": spec.name}}, "spec": pod},
        },
    }


def _jwt(spec: KymaSpec) -> dict[str, Any]:
    """The rules' ``jwt`` block: who signs the token, and which tokens are accepted.

    The APIRule controller turns each ``authorizations`` entry into its own ALLOW
    AuthorizationPolicy (entries are alternatives) whose conditions are all required
    (every scope, every audience of the entry).  So each audience gets an entry of its
    own, carrying all the scopes: a token needs one of the audiences and every scope.
    """
    jwt: dict[str, Any] = {
        "authentications": [{"issuer": spec.jwt_issuer, "jwksUri": spec.jwks_uri}]
    }
    scopes = {"requiredScopes": list(spec.jwt_scopes)} if spec.jwt_scopes else {}
    if spec.jwt_audiences:
        jwt["authorizations"] = [{"audiences": [aud], **scopes} for aud in spec.jwt_audiences]
    elif scopes:
        jwt["authorizations"] = [scopes]
    else:
        logger.warning(
            "APIRule %s/%s accepts every token %s signs (no audience or scope required)",
            spec.namespace,
            spec.name,
            spec.jwt_issuer,
        )
    return jwt


def _apirule(spec: KymaSpec) -> dict[str, Any]:
    access: dict[str, Any]
    if spec.jwt_issuer and spec.jwks_uri:
        access = {"jwt": _jwt(spec)}
    else:
        logger.warning(
            "APIRule %s/%s uses noAuth: the model at %s is open to anyone "
            "(allow_unauthenticated=True)",
            spec.namespace,
            spec.name,
            spec.host,
        )
        access = {"noAuth": True}
    return {
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": _meta(spec),
        "spec": {
            "hosts": [spec.host],
            "gateway": spec.gateway,
            "service": {"name": spec.name, "namespace": spec.namespace, "port": spec.port},
            "timeout": spec.timeout,
            "rules": [
                {"path": "/ping", "methods": ["GET"], **access},
                {"path": "/invocations", "methods": ["POST"], **access},
            ],
        },
    }


def build_manifests(spec: KymaSpec) -> list[dict[str, Any]]:
    """Return the Namespace, Service, Deployment and APIRule for ``spec``, in apply order.

    Raises
    ------
    ConfigurationError
        From :meth:`KymaSpec.check`.
    """
    spec.check()
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.namespace, "labels": {"istio-injection": "enabled"}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec),
        "spec": {
            "selector": {"app": spec.name},
            "ports": [
                {"name": "http", "port": spec.port, "targetPort": spec.port, "protocol": "TCP"}
            ],
        },
    }
    return [namespace, service, _deployment(spec), _apirule(spec)]


def pull_secret_manifest(
    name: str, namespace: str, server: str, username: str, password: str
) -> dict[str, Any]:
    """An image pull Secret (``kubernetes.io/dockerconfigjson``), as ``kubectl create
    secret docker-registry`` writes it.

    An ECR password lasts 12 hours: pods already running keep working, but any later
    pull (restart on another node, scale-out) fails after that.  fedsage re-applies
    this Secret with a fresh token on every deploy; a long-lived deployment that
    scales later needs a periodic refresh (see docs/kyma.md).
    """
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {server: {"username": username, "password": password, "auth": auth}}}
    encoded = base64.b64encode(json.dumps(config).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "fedsage"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": encoded},
    }


def deployment_record(
    spec: KymaSpec, objects: Sequence[Mapping[str, Any]], *, kubeconfig: Path | str | None
) -> KymaDeployment:
    """The registry record of a cluster deployment of ``spec`` (without the pull Secret).

    Parameters
    ----------
    spec : KymaSpec
        What was deployed.
    objects : sequence of dict
        The applied objects (a Secret among them is left out).
    kubeconfig : path or None
        The kubeconfig used, for ``fedsage kyma delete``.

    Returns
    -------
    KymaDeployment
        ``target="cluster"``.
    """
    return KymaDeployment(
        name=spec.name,
        target="cluster",
        namespace=spec.namespace,
        image=spec.image,
        url=spec.url,
        host=spec.host,
        replicas=spec.replicas,
        job_name=spec.job_name,
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        pull_secret=spec.pull_secret,
        manifests=[dict(o) for o in objects if o.get("kind") != "Secret"],
    )


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """Render objects as one multi-document YAML string (needs PyYAML, from ``fedsage[kyma]``)."""
    yaml = import_extra("yaml", "kyma")  # PyYAML comes with kubernetes
    if any(obj.get("kind") == "Secret" for obj in objects):
        raise DeploymentError("refusing to write a Secret to YAML: it holds a credential")
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)
