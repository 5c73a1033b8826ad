"""Manifests: names, domain, access rules, and validation against the official schemas."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fedsage.errors import ConfigurationError, DeploymentError
from fedsage.kyma.cluster.manifests import (
    APIRULE_SCHEMA,
    KymaSpec,
    build_manifests,
    cluster_domain,
    pull_secret_manifest,
    to_yaml,
)
from fedsage.kyma.names import derive_name, validate_name

K8S_VERSIONS = ["1.30", "1.37"]  # kubernetes-validate 1.37 ships schemas 1.25 .. 1.37
IMAGE = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/churn@sha256:" + "a" * 64
NOW = datetime(2025, 1, 2, 3, 4, 5)


def spec(**kw) -> KymaSpec:
    base = dict(
        name="churn-2025-01-02-03-04-05",
        image=IMAGE,
        replicas=2,
        env={"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"},
        pull_secret="fedsage-ecr",
        domain="c123abc.kyma.ondemand.com",
        jwt_issuer="https://tenant.accounts.ondemand.com",
        jwks_uri="https://tenant.accounts.ondemand.com/oauth2/certs",
        job_name="churn-2024-05-01-10-00-00-123",
    )
    base.update(kw)
    return KymaSpec(**base)


def apirule_validator() -> jsonschema.Validator:
    schema = json.loads(APIRULE_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def k8s_validate(obj: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    "variant",
    [{}, {"jwt_issuer": None, "jwks_uri": None, "allow_unauthenticated": True, "domain": None}],
)
def test_every_manifest_validates(variant):
    objects = build_manifests(spec(**variant))
    assert [o["kind"] for o in objects] == ["Namespace", "Service", "Deployment", "APIRule"]
    for obj in objects[:3]:
        k8s_validate(obj)
    apirule_validator().validate(objects[3])
    k8s_validate(pull_secret_manifest("fedsage-ecr", "fedsage", "acct.dkr.ecr", "AWS", "pw"))
    # and they survive the YAML round trip the CLI writes
    assert list(yaml.safe_load_all(to_yaml(objects))) == objects


def test_schemas_reject_broken_objects():
    _, service, deployment, apirule = build_manifests(spec())
    bad = json.loads(json.dumps(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["periodSeconds"] = "5"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)
    bad = json.loads(json.dumps(service))
    bad["spec"]["ports"][0]["portt"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)
    validator = apirule_validator()
    v1beta1_style = json.loads(json.dumps(apirule))
    v1beta1_style["spec"]["rules"] = [
        {"path": "/.*", "methods": ["GET", "POST"], "accessStrategies": [{"handler": "allow"}]}
    ]
    two_hosts = json.loads(json.dumps(apirule))
    two_hosts["spec"]["hosts"].append("other")
    two_access = json.loads(json.dumps(apirule))
    two_access["spec"]["rules"][0]["noAuth"] = True
    no_issuer = json.loads(json.dumps(apirule))
    del no_issuer["spec"]["rules"][1]["jwt"]["authentications"][0]["issuer"]
    for broken in (v1beta1_style, two_hosts, two_access, no_issuer):
        assert not validator.is_valid(broken)


def test_deployment_details():
    _, service, deployment, apirule = build_manifests(spec())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == IMAGE
    assert container["command"] == ["serve"]
    assert pod["imagePullSecrets"] == [{"name": "fedsage-ecr"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ping", "port": 8080}
        assert container[probe]["timeoutSeconds"] >= 5
    assert {"name": "SAGEMAKER_MODEL_SERVER_WORKERS", "value": "2"} in container["env"]
    assert service["spec"]["ports"][0]["name"] == "http"
    assert apirule["spec"]["hosts"] == ["churn-2025-01-02-03-04-05.c123abc.kyma.ondemand.com"]
    assert all("jwt" in rule for rule in apirule["spec"]["rules"])
    assert spec().url == "https://churn-2025-01-02-03-04-05.c123abc.kyma.ondemand.com"


def test_noauth_needs_opt_in_and_is_logged(caplog):
    with pytest.raises(ConfigurationError, match=r"allow_unauthenticated=True"):
        build_manifests(spec(jwt_issuer=None, jwks_uri=None))
    with pytest.raises(ConfigurationError, match=r"both"):
        build_manifests(spec(jwks_uri=None))
    with caplog.at_level(logging.WARNING, logger="fedsage.kyma.cluster.manifests"):
        objects = build_manifests(
            spec(jwt_issuer=None, jwks_uri=None, domain=None, allow_unauthenticated=True)
        )
    assert "open to anyone" in caplog.text
    apirule = objects[3]
    assert apirule["spec"]["hosts"] == ["churn-2025-01-02-03-04-05"]  # short host
    assert all(rule["noAuth"] is True for rule in apirule["spec"]["rules"])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image": "repo/churn:latest"}, "pinned by digest"),
        ({"replicas": 0}, "replicas"),
        ({"timeout": 4000}, "timeout"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"name": "9lives"}, "not valid"),
    ],
)
def test_spec_checks(kw, message):
    with pytest.raises(ConfigurationError, match=message):
        build_manifests(spec(**kw))


def test_names():
    assert derive_name("churn-2024-05-01-10-00-00-123", now=NOW) == "churn-2025-01-02-03-04-05"
    assert derive_name("Churn_Model", now=NOW) == "churn-model-2025-01-02-03-04-05"
    assert (
        derive_name(job_name="x", endpoint_name="my-api", now=NOW) == "my-api-2025-01-02-03-04-05"
    )
    long = derive_name("a" * 100 + "-1", now=NOW)
    assert len(long) == 63 and validate_name(long) == long
    with pytest.raises(ConfigurationError):
        derive_name("2024-01-01", now=NOW)  # nothing left but digits
    with pytest.raises(ConfigurationError):
        validate_name("a--b.")


def test_cluster_domain():
    kubeconfig = {
        "current-context": "shoot",
        "contexts": [{"name": "shoot", "context": {"cluster": "c1"}}],
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://api.c123abc.kyma.ondemand.com"}},
            {"name": "c2", "cluster": {"server": "https://api.other.example"}},
        ],
    }
    assert cluster_domain(kubeconfig) == "c123abc.kyma.ondemand.com"
    kubeconfig["current-context"] = None
    assert cluster_domain(kubeconfig) is None  # two clusters, no context: ambiguous
    assert (
        cluster_domain(
            {"clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443"}}]}
        )
        is None
    )


def test_pull_secret_and_yaml_refusal():
    secret = pull_secret_manifest(
        "fedsage-ecr", "fedsage", "acct.dkr.ecr.eu-central-1.amazonaws.com", "AWS", "pw"
    )
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["acct.dkr.ecr.eu-central-1.amazonaws.com"]
    assert base64.b64decode(entry["auth"]) == b"AWS:pw"
    with pytest.raises(DeploymentError, match=r"Secret"):
        to_yaml([secret])


def test_jwt_audiences_and_scopes_narrow_the_accepted_tokens(caplog):
    """Without audiences or scopes the APIRule accepts any token the issuer signs (for
    any application of the tenant); with them it says which tokens are for this model."""
    validator = apirule_validator()
    audiences, scopes = ("api://churn", "api://churn-batch"), ("predict", "read")
    apirule = build_manifests(spec(jwt_audiences=audiences, jwt_scopes=scopes))[3]
    validator.validate(apirule)
    for rule in apirule["spec"]["rules"]:
        assert rule["jwt"]["authorizations"] == [  # one of the audiences, every scope
            {"audiences": ["api://churn"], "requiredScopes": ["predict", "read"]},
            {"audiences": ["api://churn-batch"], "requiredScopes": ["predict", "read"]},
        ]
    scoped = build_manifests(spec(jwt_scopes=("predict",)))[3]
    validator.validate(scoped)
    assert scoped["spec"]["rules"][1]["jwt"]["authorizations"] == [{"requiredScopes": ["predict"]}]
    with caplog.at_level(logging.WARNING, logger="fedsage.kyma.cluster.manifests"):
        open_to_tenant = build_manifests(spec())[3]
    assert "authorizations" not in open_to_tenant["spec"]["rules"][1]["jwt"]
    assert "accepts every token" in caplog.text
    broken = json.loads(json.dumps(apirule))
    broken["spec"]["rules"][1]["jwt"]["authorizations"][0]["audience"] = "typo"
    assert not validator.is_valid(broken)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"jwt_audiences": "api://churn"}, "jwt_audiences must be a list"),
        ({"jwt_scopes": ("predict", " ")}, "jwt_scopes must be a list"),
        ({"jwt_audiences": (" api://churn",)}, "surrounding spaces"),
        (
            {"jwt_issuer": None, "jwks_uri": None, "jwt_scopes": ("predict",)},
            "set jwt_issuer and jwks_uri",
        ),
    ],
)
def test_jwt_narrowing_checks(kw, message):
    with pytest.raises(ConfigurationError, match=message):
        build_manifests(spec(**kw))


def test_access_settings_from_the_environment(monkeypatch):
    from fedsage.kyma.cluster.access import access_from_env

    monkeypatch.setenv("FEDSAGE_KYMA_JWT_ISSUER", "https://tenant.accounts.ondemand.com")
    monkeypatch.setenv("FEDSAGE_KYMA_JWKS_URI", "https://tenant.accounts.ondemand.com/certs")
    monkeypatch.setenv("FEDSAGE_KYMA_JWT_AUDIENCES", " api://churn , ,api://two")
    monkeypatch.setenv("FEDSAGE_KYMA_JWT_SCOPES", "predict")
    access = access_from_env()
    assert access.jwt_audiences == ("api://churn", "api://two")
    assert access.jwt_scopes == ("predict",)
    monkeypatch.delenv("FEDSAGE_KYMA_JWT_ISSUER")
    monkeypatch.delenv("FEDSAGE_KYMA_JWKS_URI")
    monkeypatch.setenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", "1")
    with pytest.raises(ConfigurationError, match="FEDSAGE_KYMA_JWT_AUDIENCES"):
        access_from_env()  # narrowing settings without jwt access are a mistake
