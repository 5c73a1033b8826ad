"""``fedsage kyma`` over the registry records (cluster requests go to the recording peer)."""

from __future__ import annotations

import pytest
import yaml
from _cli import invoke

from fedsage.kyma.cluster.manifests import KymaSpec, build_manifests, deployment_record
from fedsage.kyma.records import get_record, save_record

from .k8s_peer import recording_peer

IMAGE = "127.0.0.1:5000/models/churn@sha256:" + "c" * 64


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))


def test_manifests_for_a_job(tmp_path):
    result = invoke(["kyma",
            "manifests",
            "churn-2024-05-01-10-00-00-1",
            "--out",
            str(tmp_path / "out"),
            "--image",
            IMAGE,
            "--program",
            "train.py",
            "--jwt-issuer",
            "https://idp",
            "--jwks-uri",
            "https://idp/certs",
            "--jwt-audience",
            "api://churn",
            "--jwt-scope",
            "predict",
        ],
    )
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").glob("churn-*.yaml")
    documents = list(yaml.safe_load_all(written.read_text()))
    assert [d["kind"] for d in documents] == ["Namespace", "Service", "Deployment", "APIRule"]
    assert documents[3]["spec"]["rules"][1]["jwt"]["authorizations"] == [
        {"audiences": ["api://churn"], "requiredScopes": ["predict"]}
    ]


def test_manifests_refuses_open_rule_without_opt_in(tmp_path):
    result = invoke(["kyma", "manifests", "churn-1", "--out", str(tmp_path), "--image", IMAGE])
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "allow_unauthenticated" in result.output
    assert "Traceback" not in result.output


def test_list_describe_manifests_delete(tmp_path):
    with recording_peer() as peer:
        kubeconfig = peer.kubeconfig(tmp_path)
        spec = KymaSpec(
            name="churn-2025-01-02-03-04-05",
            image=IMAGE,
            replicas=2,
            pull_secret="fedsage-ecr",
            allow_unauthenticated=True,
        )
        save_record(deployment_record(spec, build_manifests(spec), kubeconfig=kubeconfig))
        listed = invoke(["kyma", "list"], env={"COLUMNS": "200"})
        assert listed.exit_code == 0 and "churn-2025-01-02-03-04-05" in listed.output
        described = invoke(["kyma", "describe", spec.name])
        assert described.exit_code == 0 and '"replicas": 2' in described.output
        out = invoke(["kyma", "manifests", spec.name, "--out", str(tmp_path / "m")])
        assert out.exit_code == 0, out.output
        deleted = invoke(["kyma", "delete", spec.name])
        assert deleted.exit_code == 0, deleted.output
        deletes = [r.path for r in peer.requests if r.method == "DELETE"]
    assert "/api/v1/namespaces/fedsage/secrets/fedsage-ecr" in deletes
    assert len(deletes) == 4  # APIRule, Deployment, Service, Secret; not the Namespace
    missing = invoke(["kyma", "describe", spec.name])
    assert missing.exit_code == 1 and "no Kyma deployment named" in missing.output
    with pytest.raises(Exception, match=r"no Kyma deployment"):
        get_record(spec.name)


def test_manifests_of_a_local_deployment_is_a_clear_error(tmp_path):
    from fedsage._home import registry
    from fedsage.kyma.records import KIND

    registry().add(KIND, "churn-local", {"name": "churn-local", "target": "local", "manifests": []})
    result = invoke(["kyma", "manifests", "churn-local", "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert "local deployment" in result.output and "no Kubernetes manifests" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()  # no empty file written
