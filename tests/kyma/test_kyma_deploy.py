"""Cluster orchestration end to end as far as it runs here: a real OCI registry stands in
for ECR (injected client), moto answers the ECR calls, and the recording peer (not a
Kubernetes API server) receives the apply and rollout requests."""

from __future__ import annotations

import base64
import copy
import json

import httpx
import jsonschema
import pytest
from moto import mock_aws

from fedsage.errors import ConfigurationError
from fedsage.kyma import cluster
from fedsage.kyma.cluster.base_images import sagemaker_sklearn_image
from fedsage.kyma.cluster.image import MANIFEST_TYPES, plan_image, push_image, scratch_base
from fedsage.kyma.cluster.layers import build_layer
from fedsage.kyma.cluster.manifests import APIRULE_SCHEMA, KymaSpec, build_manifests
from fedsage.kyma.cluster.registry_client import RegistryClient
from fedsage.kyma.records import get_record

from .k8s_peer import recording_peer

NAME, NS = "churn-2025-01-02-03-04-05", "fedsage"


def _rolled_out(obj):
    dep = copy.deepcopy(obj)
    dep["metadata"]["generation"] = 1
    dep["status"] = {
        "observedGeneration": 1,
        "updatedReplicas": 2,
        "replicas": 2,
        "availableReplicas": 2,
    }
    return dep


def _push_base(oci_registry, tmp_path) -> str:
    """A small base image in the real registry, named by FEDSAGE_KYMA_BASE_IMAGE."""
    (tmp_path / "base" / "usr").mkdir(parents=True)
    (tmp_path / "base" / "usr" / "serve").write_text("#!/bin/sh\n")
    layer = build_layer([(tmp_path / "base" / "usr", "usr")], tmp_path / "base.tar.gz")
    with RegistryClient(oci_registry.url) as client:
        plan = plan_image(scratch_base(), [layer], command=None)
        push_image(plan, client, "sagemaker-base", "1.2-1", workdir=tmp_path / "w0")
    return f"{oci_registry.host}/sagemaker-base:1.2-1"


@mock_aws
def test_cluster_deploy_end_to_end(aws_env, oci_registry, job_artifacts, tmp_path, monkeypatch):
    model_tar, code_tar = job_artifacts
    monkeypatch.setenv("FEDSAGE_KYMA_BASE_IMAGE", _push_base(oci_registry, tmp_path))
    monkeypatch.setenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", "1")
    events = []
    with recording_peer() as peer, RegistryClient(oci_registry.url) as registry:
        kubeconfig = peer.kubeconfig(tmp_path)
        dep = build_manifests(
            KymaSpec(
                name=NAME, image="r/x@sha256:" + "0" * 64, replicas=2, allow_unauthenticated=True
            )
        )[2]
        peer.answer(
            "GET",
            f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/status",
            (200, _rolled_out(dep)),
        )
        peer.answer(
            "GET",
            f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{NAME}",
            (200, {"status": {"state": "Processing"}}),
            (200, {"status": {"state": "Ready"}}),
        )
        url = cluster.deploy(
            name=NAME,
            model_tar=model_tar,
            code_tar=code_tar,
            program="train.py",
            framework_version="host",
            replicas=2,
            profile_name="dwc",
            kubeconfig=kubeconfig,
            progress=lambda e, i: events.append((e, i)),
            job_name="churn-2025-01-01-00-00-00-001",
            registry=registry,
            poll=0,
        )
        applied = [(r.method, r.path, r.body) for r in peer.requests if r.method == "PATCH"]
    # short host: the peer's server is not https://api.<domain>
    assert url == f"https://{NAME}"
    assert any(e == "warning" and "domain is unknown" in i["message"] for e, i in events)
    kinds = [body["kind"] for _, _, body in applied]
    assert kinds == ["Namespace", "Secret", "Service", "Deployment", "APIRule"]
    secret = applied[1][2]
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert list(auths) == ["123456789012.dkr.ecr.eu-central-1.amazonaws.com"]  # moto's ECR
    deployment = applied[3][2]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    image = container["image"]
    assert image.startswith(f"{oci_registry.host}/{NAME}@sha256:")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SAGEMAKER_PROGRAM"] == "train.py"
    assert deployment["spec"]["replicas"] == 2
    rules = applied[4][2]["spec"]["rules"]
    assert all(rule.get("noAuth") is True for rule in rules)
    # the pushed image is really in the registry: manifest by digest, base layer + bundle
    digest = image.split("@", 1)[1]
    answer = httpx.get(
        f"{oci_registry.url}/v2/{NAME}/manifests/{digest}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    assert answer.status_code == 200
    assert len(answer.json()["layers"]) == 2
    record = get_record(NAME)
    assert record.target == "cluster" and record.image == image
    assert [e for e, _ in events].count("blob") == 3 and ("manifest" in [e for e, _ in events])


@mock_aws
def test_cluster_deploy_applies_jwt_audiences_and_scopes(
    aws_env, oci_registry, job_artifacts, tmp_path, monkeypatch
):
    """FEDSAGE_KYMA_JWT_AUDIENCES / _SCOPES reach the applied APIRule as
    ``jwt.authorizations`` (without them any token of the issuer is accepted)."""
    model_tar, code_tar = job_artifacts
    monkeypatch.setenv("FEDSAGE_KYMA_BASE_IMAGE", _push_base(oci_registry, tmp_path))
    monkeypatch.delenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", raising=False)
    monkeypatch.setenv("FEDSAGE_KYMA_JWT_ISSUER", "https://tenant.accounts.ondemand.com")
    monkeypatch.setenv("FEDSAGE_KYMA_JWKS_URI", "https://tenant.accounts.ondemand.com/certs")
    monkeypatch.setenv("FEDSAGE_KYMA_JWT_AUDIENCES", "api://churn")
    monkeypatch.setenv("FEDSAGE_KYMA_JWT_SCOPES", "predict,read")
    with recording_peer() as peer, RegistryClient(oci_registry.url) as registry:
        peer.answer(
            "GET",
            f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{NAME}",
            (200, {"status": {"state": "Ready"}}),
        )
        dep = build_manifests(
            KymaSpec(name=NAME, image="r/x@sha256:" + "0" * 64, allow_unauthenticated=True)
        )[2]
        rolled = _rolled_out(dep)
        rolled["status"].update(updatedReplicas=1, replicas=1, availableReplicas=1)
        peer.answer("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/status", (200, rolled))
        cluster.deploy(
            name=NAME,
            model_tar=model_tar,
            code_tar=code_tar,
            program="train.py",
            framework_version="host",
            profile_name="dwc",
            kubeconfig=peer.kubeconfig(tmp_path),
            registry=registry,
            poll=0,
        )
        (apirule,) = [
            r.body for r in peer.requests if r.method == "PATCH" and r.path.endswith(NAME) and "apirules" in r.path
        ]
    schema = json.loads(APIRULE_SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(apirule)
    for rule in apirule["spec"]["rules"]:
        assert rule["jwt"]["authentications"][0]["issuer"] == "https://tenant.accounts.ondemand.com"
        assert rule["jwt"]["authorizations"] == [
            {"audiences": ["api://churn"], "requiredScopes": ["predict", "read"]}
        ]


@mock_aws
def test_cluster_deploy_needs_an_access_rule(aws_env, job_artifacts, tmp_path, monkeypatch):
    model_tar, code_tar = job_artifacts
    monkeypatch.delenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", raising=False)
    with pytest.raises(ConfigurationError, match="FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED"):
        cluster.deploy(
            name=NAME,
            model_tar=model_tar,
            code_tar=code_tar,
            program="train.py",
            framework_version="1.2-1",
            kubeconfig=tmp_path / "k",
        )


def test_sagemaker_image_reference():
    assert sagemaker_sklearn_image("1.2-1", "us-east-1") == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com",
        "sagemaker-scikit-learn",
        "1.2-1-cpu-py3",
    )
    with pytest.raises(ConfigurationError, match="FEDSAGE_KYMA_BASE_IMAGE"):
        sagemaker_sklearn_image("host", "us-east-1")
