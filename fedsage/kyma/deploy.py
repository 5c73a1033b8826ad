"""``deploy_to_kyma`` orchestration for both targets: local replicas, or a Kyma cluster.

Cluster path: bundle -> requirements layer (when the code has a ``requirements.txt``) ->
bundle layer -> ECR repository + login -> base image -> image plan ->
push -> manifests (+ pull Secret) -> server-side apply -> rollout -> APIRule ``Ready`` ->
record -> URL.  Every step is a function of :mod:`fedsage.kyma`; this module only
chains them and reports progress through ``progress(event, info)`` (it never prints).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigurationError
from ..runtimes.base import HOST, Runtime
from .image import BaseImage, base_from_registry, plan_image, push_image
from .layers import Layer
from .registry_client import RegistryClient
from .requirements_layer import build_requirements_layer, pythonpath_env

if TYPE_CHECKING:
    from .bundle import Bundle

__all__ = [
    "ALLOW_UNAUTHENTICATED_ENV",
    "BASE_IMAGE_ENV",
    "JWKS_URI_ENV",
    "JWT_ISSUER_ENV",
    "SKLEARN_IMAGE_ACCOUNTS",
    "deploy_to_kyma",
    "sagemaker_sklearn_image",
]

logger = logging.getLogger(__name__)
Progress = Callable[[str, dict[str, Any]], None]

BASE_IMAGE_ENV = "FEDSAGE_KYMA_BASE_IMAGE"
JWT_ISSUER_ENV = "FEDSAGE_KYMA_JWT_ISSUER"
JWKS_URI_ENV = "FEDSAGE_KYMA_JWKS_URI"
ALLOW_UNAUTHENTICATED_ENV = "FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED"
PULL_SECRET = "fedsage-ecr"  # noqa: S105 - a Secret object name
# AWS accounts that publish the SageMaker scikit-learn images, per region (from the
# SageMaker Python SDK's image-URI table; not verified against AWS here).  Other
# regions: set FEDSAGE_KYMA_BASE_IMAGE.
SKLEARN_IMAGE_ACCOUNTS = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "eu-central-1": "492215442770",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "ap-northeast-1": "354813040037",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
}


@dataclass(frozen=True)
class _Access:
    jwt_issuer: str | None
    jwks_uri: str | None
    allow_unauthenticated: bool


def _access() -> _Access:
    issuer, jwks = os.environ.get(JWT_ISSUER_ENV), os.environ.get(JWKS_URI_ENV)
    allow = os.environ.get(ALLOW_UNAUTHENTICATED_ENV, "").strip().lower() in ("1", "true", "yes")
    if issuer and jwks:
        return _Access(issuer, jwks, False)
    if bool(issuer) != bool(jwks):
        raise ConfigurationError(f"set both {JWT_ISSUER_ENV} and {JWKS_URI_ENV} for jwt access")
    if not allow:
        raise ConfigurationError(
            f"choose who may call the model: set {JWT_ISSUER_ENV} and {JWKS_URI_ENV} "
            f"(jwt access), or {ALLOW_UNAUTHENTICATED_ENV}=1 to expose it to anyone on the "
            "internet, as fedml-aws did"
        )
    logger.warning(
        "%s=1: the model will be reachable WITHOUT authentication by anyone on the internet",
        ALLOW_UNAUTHENTICATED_ENV,
    )
    return _Access(None, None, True)


def sagemaker_sklearn_image(framework_version: str, region: str) -> tuple[str, str, str]:
    """Return ``(registry host, repository, tag)`` of SageMaker's scikit-learn image.

    Raises
    ------
    ConfigurationError
        If the region is not in :data:`SKLEARN_IMAGE_ACCOUNTS` or there is no version.
    """
    account = SKLEARN_IMAGE_ACCOUNTS.get(region)
    if account is None or not framework_version or framework_version == "host":
        raise ConfigurationError(
            f"no SageMaker scikit-learn image known for region {region!r} and "
            f"framework_version {framework_version!r}; set {BASE_IMAGE_ENV} to "
            "registry/repository:tag"
        )
    host = f"{account}.dkr.ecr.{region}.amazonaws.com"
    return host, "sagemaker-scikit-learn", f"{framework_version}-cpu-py3"


def _split_reference(ref: str) -> tuple[str, str, str]:
    host, _, rest = ref.partition("/")
    if not rest or ("." not in host and ":" not in host and host != "localhost"):
        raise ConfigurationError(f"{BASE_IMAGE_ENV}={ref!r} must be registry-host/repository:tag")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return host, repository, reference


def _base_image(login: Any, session: Any, framework_version: str | None) -> BaseImage:
    configured = os.environ.get(BASE_IMAGE_ENV)
    if configured:
        host, repository, reference = _split_reference(configured)
    else:
        host, repository, reference = sagemaker_sklearn_image(
            framework_version or "", session.region_name or ""
        )
    scheme = "http" if host.startswith(("127.0.0.1", "localhost")) else "https"
    if host.endswith(".amazonaws.com"):  # the ECR token reads any registry the user may read
        client = replace(login, registry=host, endpoint=f"https://{host}").client()
    else:
        client = RegistryClient(f"{scheme}://{host}")
    return base_from_registry(client, repository, reference)


def _requirements_layers(
    bundle: Bundle, runtime: Runtime, emit: Progress, code_tar: Path | None
) -> list[Layer]:
    """The requirements layer (a list of zero or one), built before anything is pushed."""
    if not bundle.requirements:
        return []
    if runtime.framework_version == HOST:
        emit(
            "warning",
            {
                "message": "requirements.txt is not baked into the image: with the host "
                "runtime the image's Python is unknown (pass a framework_version); the "
                "image's `serve` must install it at start-up (pods need network access)"
            },
        )
        return []
    emit("step", {"step": "requirements"})
    layer = build_requirements_layer(
        bundle.requirements,
        runtime.framework_version,
        source=f"requirements.txt of {code_tar}",
        cwd=bundle.code_dir,
    )
    return [] if layer is None else [layer]


def deploy_to_kyma(
    *,
    target: str,
    name: str,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    replicas: int = 1,
    profile_name: str | None = None,
    kubeconfig: Path | str | None = None,
    progress: Progress | None = None,
    job_name: str | None = None,
    namespace: str = "fedsage",
    registry: RegistryClient | None = None,
    base_image: BaseImage | None = None,
    rollout_timeout: float = 600.0,
    poll: float = 2.0,
) -> str:
    """Deploy a trained model to a local Kyma stand-in or a Kyma cluster; return its URL.

    Parameters
    ----------
    target : {"local", "cluster"}
        ``local`` starts replicas behind a gateway on 127.0.0.1
        (:func:`fedsage.kyma.local.deploy_local`); ``cluster`` builds and pushes an image
        to ECR and applies it to the cluster of the kubeconfig.
    name : str
        Deployment name (see :func:`fedsage.kyma.manifests.derive_name`).
    model_tar, code_tar, program, runtime
        The job's ``model.tar.gz``, ``sourcedir.tar.gz``, entry script and runtime
        (``runtime.framework_version`` picks the SageMaker base image on a cluster).
    replicas : int, default=1
        ``initial_instance_count``.
    profile_name : str, optional
        AWS profile for ECR (cluster only).
    kubeconfig : path, optional
        Default ``./kubeconfig.yml``, then ``$KUBECONFIG``, then ``~/.kube/config``.
    progress : callable, optional
        ``progress(event, info)``: ``step``, ``blob``, ``manifest``, ``applied``,
        ``rollout``, ``warning``, ``replica``, ``gateway``.
    job_name : str, optional
        Recorded with the deployment.
    namespace : str, default="fedsage"
        Kubernetes namespace (cluster only).
    registry : RegistryClient, optional
        Push here instead of the ECR registry (the ECR repository and login still
        happen; the pull Secret is ECR's).  For tests and mirrors.
    base_image : BaseImage, optional
        Use this base instead of ``$FEDSAGE_KYMA_BASE_IMAGE`` or SageMaker's image.
    rollout_timeout, poll : float
        Seconds to wait for the rollout, and between status reads.

    Returns
    -------
    str
        The model's base URL; POST to ``<url>/invocations``.

    Raises
    ------
    ConfigurationError
        For an unknown target, a bad name or count, or no access rule on a cluster.
    DeploymentError
        If a step fails (the message says which).
    """
    emit: Progress = progress or (lambda event, info: None)
    if target == "local":
        from .local import deploy_local

        return deploy_local(
            name,
            model_tar=Path(model_tar),
            code_tar=Path(code_tar) if code_tar else None,
            program=program,
            runtime=runtime,
            replicas=replicas,
            job_name=job_name,
            progress=emit,
        )
    if target != "cluster":
        raise ConfigurationError(f"target must be 'local' or 'cluster'; got {target!r}")
    return _deploy_cluster(
        name=name,
        model_tar=Path(model_tar),
        code_tar=Path(code_tar) if code_tar else None,
        program=program,
        runtime=runtime,
        replicas=replicas,
        profile_name=profile_name,
        kubeconfig=kubeconfig,
        emit=emit,
        job_name=job_name,
        namespace=namespace,
        registry=registry,
        base_image=base_image,
        rollout_timeout=rollout_timeout,
        poll=poll,
    )


def _deploy_cluster(
    *,
    name: str,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    runtime: Runtime,
    replicas: int,
    profile_name: str | None,
    kubeconfig: Path | str | None,
    emit: Progress,
    job_name: str | None,
    namespace: str,
    registry: RegistryClient | None,
    base_image: BaseImage | None,
    rollout_timeout: float,
    poll: float,
) -> str:
    from .apply import (
        api_client,
        apply_objects,
        find_kubeconfig,
        wait_for_apirule,
        wait_for_rollout,
    )
    from .bundle import build_bundle
    from .ecr import aws_session, ecr_login, ensure_ecr_repository
    from .layers import build_layer
    from .manifests import KymaSpec, build_manifests, cluster_domain, validate_name
    from .records import save_record

    validate_name(name)
    access = _access()
    kube_path = find_kubeconfig(kubeconfig)
    with tempfile.TemporaryDirectory(prefix="fedsage-kyma-") as tmp:
        work = Path(tmp)
        emit("step", {"step": "bundle"})
        bundle = build_bundle(model_tar, work / "root", code_tar=code_tar, program=program)
        requirements = _requirements_layers(bundle, runtime, emit, code_tar)  # before any push
        code_layer = build_layer([(bundle.root / "opt", "opt")], work / "bundle.tar.gz")
        layers = [*requirements, code_layer]
        emit("step", {"step": "ecr"})
        session = aws_session(profile_name)
        ensure_ecr_repository(name, session)
        login = ecr_login(session)
        client = registry or login.client()
        emit("step", {"step": "base image"})
        base = base_image or _base_image(login, session, runtime.framework_version)
        env = dict(bundle.env)
        if requirements:
            env.update(pythonpath_env(base.config))
        plan = plan_image(base, layers, env=env, labels={"fedsage.job": job_name or ""})
        emit("step", {"step": "push", "repository": name})
        pushed = push_image(plan, client, name, "latest", workdir=work / "blobs", progress=emit)
    emit("step", {"step": "apply"})
    domain = cluster_domain(yaml.safe_load(kube_path.read_text(encoding="utf-8")) or {})
    spec = KymaSpec(
        name=name,
        image=pushed.reference,
        namespace=namespace,
        replicas=replicas,
        env=bundle.env,
        pull_secret=PULL_SECRET,
        domain=domain,
        jwt_issuer=access.jwt_issuer,
        jwks_uri=access.jwks_uri,
        allow_unauthenticated=access.allow_unauthenticated,
        job_name=job_name,
    )
    objects = build_manifests(spec)
    secret = login.pull_secret(PULL_SECRET, namespace)
    kube = api_client(kube_path)
    apply_objects(kube, [objects[0], secret, *objects[1:]], progress=emit)
    emit("step", {"step": "rollout"})
    wait_for_rollout(kube, namespace, name, timeout=rollout_timeout, poll=poll, progress=emit)
    wait_for_apirule(kube, namespace, name, poll=poll, progress=emit)
    save_record(spec, objects, target="cluster", kubeconfig=kube_path)
    if spec.url is None:
        emit(
            "warning",
            {
                "message": f"the cluster domain is unknown (the kubeconfig's server "
                f"is not https://api.<domain>); the model is at https://{name}.<domain>"
            },
        )
        return f"https://{spec.host}"
    emit("done", {"url": spec.url})
    return spec.url
