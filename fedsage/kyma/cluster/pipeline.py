"""The cluster target: build and push the image, apply it to Kyma, wait until it serves.

bundle -> requirements layer (when the code has a ``requirements.txt``) -> bundle layer
-> ECR repository + login -> base image -> image plan -> push -> manifests (+ pull
Secret) -> server-side apply -> rollout -> APIRule ``Ready`` -> record -> URL.  Every
step is a function of :mod:`fedsage.kyma.cluster`; this module only chains them and
reports progress through ``progress(event, info)`` (it never prints).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import import_extra
from ...runtimes.base import HOST
from ..names import validate_name
from ..records import KymaDeployment, save_record
from .access import access_from_env
from .base_images import BASE_IMAGE_ENV, base_image_client, sagemaker_image, split_reference
from .image import BaseImage, base_from_registry, plan_image, push_image
from .layers import Layer
from .registry_client import RegistryClient
from .requirements_layer import build_requirements_layer, pythonpath_env

if TYPE_CHECKING:
    from .bundle import Bundle
    from .ecr import EcrLogin

__all__ = ["PULL_SECRET", "delete", "deploy"]

logger = logging.getLogger(__name__)
Progress = Callable[[str, dict[str, Any]], None]

PULL_SECRET = "fedsage-ecr"  # noqa: S105 - a Secret object name


def _base_image(
    login: EcrLogin, region: str, framework: str, framework_version: str
) -> BaseImage:
    configured = os.environ.get(BASE_IMAGE_ENV)
    if configured:
        host, repository, reference = split_reference(configured)
    else:
        host, repository, reference = sagemaker_image(framework, framework_version, region)
    return base_from_registry(base_image_client(host, login), repository, reference)


def _requirements_layers(
    bundle: Bundle, framework_version: str, emit: Progress, code_tar: Path | None
) -> list[Layer]:
    """The requirements layer (a list of zero or one), built before anything is pushed."""
    if not bundle.requirements:
        return []
    if framework_version == HOST:
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
        framework_version,
        source=f"requirements.txt of {code_tar}",
        cwd=bundle.code_dir,
    )
    return [] if layer is None else [layer]


def deploy(
    *,
    name: str,
    model_tar: Path,
    code_tar: Path | None,
    program: str | None,
    framework_version: str,
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
    framework: str = "scikit-learn",
    env: dict[str, str] | None = None,
) -> str:
    """Build an image of a trained model, push it to ECR and serve it on Kyma; return its URL.

    Parameters
    ----------
    name : str
        Deployment name (see :func:`fedsage.kyma.names.derive_name`).
    model_tar, code_tar, program
        The job's ``model.tar.gz``, ``sourcedir.tar.gz`` and entry script.
    framework_version : str
        The scikit-learn image version the job trained with (``"1.2-1"``): it picks the
        SageMaker base image and the requirements layer's Python (``"host"``: neither).
    replicas : int, default=1
        ``initial_instance_count``.
    profile_name : str, optional
        AWS profile for ECR.
    kubeconfig : path, optional
        Default ``$KUBECONFIG``, then ``./kubeconfig.yml`` (with a warning), then
        ``~/.kube/config`` (see :func:`fedsage.kyma.cluster.apply.find_kubeconfig`).
    progress : callable, optional
        ``progress(event, info)``: ``step``, ``blob``, ``manifest``, ``applied``,
        ``rollout``, ``warning``, ``done``.
    job_name : str, optional
        Recorded with the deployment.
    namespace : str, default="fedsage"
        Kubernetes namespace.
    registry : RegistryClient, optional
        Push here instead of the ECR registry (the ECR repository and login still
        happen; the pull Secret is ECR's).  For tests and mirrors.
    base_image : BaseImage, optional
        Use this base instead of ``$FEDSAGE_KYMA_BASE_IMAGE`` or SageMaker's image.
    rollout_timeout, poll : float
        Seconds to wait for the rollout, and between status reads.
    framework : str, default="scikit-learn"
        The SageMaker image family the model was trained on (``xgboost`` for built-in
        XGBoost models, served from the XGBoost image of ``framework_version``).
    env : dict, optional
        Extra variables for the model server (a built-in algorithm's defaults).

    Returns
    -------
    str
        The model's base URL; POST to ``<url>/invocations``.

    Raises
    ------
    ConfigurationError
        For a bad name, no access rule, no kubeconfig, or a missing extra
        (``fedsage[kyma]``, ``fedsage[aws]``).
    DeploymentError
        If a step fails (the message says which).
    """
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
    from .manifests import KymaSpec, build_manifests, cluster_domain, deployment_record

    emit: Progress = progress or (lambda event, info: None)
    validate_name(name)
    access = access_from_env()
    yaml = import_extra("yaml", "kyma")  # every extra is checked before anything is pushed
    import_extra("kubernetes", "kyma")
    import_extra("boto3", "aws")
    kube_path = find_kubeconfig(kubeconfig)
    model_tar, code_tar = Path(model_tar), Path(code_tar) if code_tar else None
    with tempfile.TemporaryDirectory(prefix="fedsage-kyma-") as tmp:
        work = Path(tmp)
        emit("step", {"step": "bundle"})
        bundle = build_bundle(model_tar, work / "root", code_tar=code_tar, program=program)
        requirements = _requirements_layers(bundle, framework_version, emit, code_tar)
        code_layer = build_layer([(bundle.root / "opt", "opt")], work / "bundle.tar.gz")
        layers = [*requirements, code_layer]
        emit("step", {"step": "ecr"})
        session = aws_session(profile_name)
        ensure_ecr_repository(name, session)
        login = ecr_login(session)
        client = registry or login.client()
        emit("step", {"step": "base image"})
        region = session.region_name or ""
        base = base_image or _base_image(login, region, framework, framework_version)
        server_env = {**bundle.env, **(env or {})}
        env = dict(server_env)
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
        env=server_env,
        pull_secret=PULL_SECRET,
        domain=domain,
        jwt_issuer=access.jwt_issuer,
        jwks_uri=access.jwks_uri,
        jwt_audiences=access.jwt_audiences,
        jwt_scopes=access.jwt_scopes,
        allow_unauthenticated=access.allow_unauthenticated,
        job_name=job_name,
    )
    if access.jwt_issuer and not access.jwt_audiences and not access.jwt_scopes:
        emit(
            "warning",
            {
                "message": f"the model accepts every token {access.jwt_issuer} signs; set "
                "FEDSAGE_KYMA_JWT_AUDIENCES (and FEDSAGE_KYMA_JWT_SCOPES) to accept only "
                "tokens issued for it"
            },
        )
    objects = build_manifests(spec)
    secret = login.pull_secret(PULL_SECRET, namespace)
    kube = api_client(kube_path)
    apply_objects(kube, [objects[0], secret, *objects[1:]], progress=emit)
    emit("step", {"step": "rollout"})
    wait_for_rollout(kube, namespace, name, timeout=rollout_timeout, poll=poll, progress=emit)
    wait_for_apirule(kube, namespace, name, poll=poll, progress=emit)
    save_record(deployment_record(spec, objects, kubeconfig=kube_path))
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


def delete(record: KymaDeployment, kubeconfig: Path | str | None = None) -> list[str]:
    """Delete the cluster objects of a deployment (not its Namespace); keep its record.

    Parameters
    ----------
    record : KymaDeployment
        A record with ``target="cluster"``.
    kubeconfig : path, optional
        Instead of the recorded kubeconfig.

    Returns
    -------
    list of str
        The objects deleted (``"APIRule churn-…"``, ...); objects already gone are skipped.

    Raises
    ------
    DeploymentError
        If the cluster refuses a delete.
    """
    from .apply import api_client, delete_objects

    client = api_client(kubeconfig or record.kubeconfig)
    objects = list(record.manifests)
    if record.pull_secret:
        meta = {"name": record.pull_secret, "namespace": record.namespace}
        objects.insert(1, {"apiVersion": "v1", "kind": "Secret", "metadata": meta})
    return delete_objects(client, objects)
