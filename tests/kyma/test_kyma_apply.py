"""apply.py: rollout logic as a pure function, and the requests the kubernetes client sends
(to a recording HTTP peer on 127.0.0.1 -- not a real API server)."""

from __future__ import annotations

import copy

import pytest

from fedsage.errors import ConfigurationError, DeploymentError
from fedsage.kyma.cluster.apply import (
    api_client,
    apply_objects,
    delete_objects,
    find_kubeconfig,
    rollout_status,
    wait_for_apirule,
    wait_for_rollout,
)
from fedsage.kyma.cluster.manifests import KymaSpec, build_manifests, pull_secret_manifest

from .k8s_peer import recording_peer

NAME, NS = "churn-2025-01-02-03-04-05", "fedsage"
IMAGE = "127.0.0.1:5000/models/churn@sha256:" + "b" * 64


def objects():
    spec = KymaSpec(
        name=NAME, image=IMAGE, replicas=2, pull_secret="fedsage-ecr", allow_unauthenticated=True
    )
    return build_manifests(spec)


def deployment(generation=2, observed=2, updated=2, replicas=2, available=2, conditions=()):
    dep = copy.deepcopy(objects()[2])
    dep["metadata"]["generation"] = generation
    dep["status"] = {
        "observedGeneration": observed,
        "updatedReplicas": updated,
        "replicas": replicas,
        "availableReplicas": available,
        "conditions": list(conditions),
    }
    return dep


@pytest.mark.parametrize(
    ("dep", "done", "failed", "text"),
    [
        (deployment(generation=3), False, False, "spec update to be observed"),
        (
            deployment(updated=1, replicas=2),
            False,
            False,
            "1 out of 2 new replicas have been updated",
        ),
        (deployment(replicas=3), False, False, "1 old replicas are pending termination"),
        (deployment(available=1), False, False, "1 of 2 updated replicas are available"),
        (
            deployment(
                conditions=[
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            ),
            False,
            True,
            "exceeded its progress deadline",
        ),
        (deployment(), True, False, "successfully rolled out"),
    ],
)
def test_rollout_status(dep, done, failed, text):
    state = rollout_status(dep)
    assert (state.done, state.failed) == (done, failed)
    assert text in state.message


def test_find_kubeconfig(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ConfigurationError, match=r"kubeconfig.yml"):
        find_kubeconfig()
    home = tmp_path / ".kube" / "config"
    home.parent.mkdir()
    home.write_text("x")
    assert find_kubeconfig() == home
    (tmp_path / "kubeconfig.yml").write_text("x")
    with pytest.warns(UserWarning, match=str(tmp_path / "kubeconfig.yml")):
        assert find_kubeconfig() == tmp_path / "kubeconfig.yml"  # beats ~/.kube/config
    assert str(tmp_path / "kubeconfig.yml") in caplog.text
    explicit = tmp_path / "explicit.yml"
    explicit.write_text("x")
    assert find_kubeconfig(explicit) == explicit


def test_exported_kubeconfig_wins_over_the_working_folder(tmp_path, monkeypatch, recwarn):
    """A kubeconfig.yml lying in the working folder (a cloned notebook folder, say) must
    not take over from the one the user exported: it can run commands (``exec:``) and
    decides where the image and the ECR pull Secret go."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kubeconfig.yml").write_text("x")
    exported = tmp_path / "exported.yml"
    exported.write_text("x")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing.yml'}:{exported}")
    assert find_kubeconfig() == exported
    assert not [w for w in recwarn if "kubeconfig" in str(w.message)]


def test_server_side_apply_requests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with recording_peer() as peer:
        peer.kubeconfig(tmp_path)
        with pytest.warns(UserWarning, match="working folder"):
            client = api_client()  # reads ./kubeconfig.yml
        secret = pull_secret_manifest("fedsage-ecr", NS, "127.0.0.1:5000", "AWS", "ecr-password")
        objs = objects()
        seen = []
        apply_objects(client, [objs[0], secret, *objs[1:]], progress=lambda e, i: seen.append(i))
        apply_objects(client, objs)  # idempotent: the same requests again
    paths = [(r.method, r.path) for r in peer.requests[:5]]
    assert paths == [
        ("PATCH", f"/api/v1/namespaces/{NS}"),
        ("PATCH", f"/api/v1/namespaces/{NS}/secrets/fedsage-ecr"),
        ("PATCH", f"/api/v1/namespaces/{NS}/services/{NAME}"),
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"),
        ("PATCH", f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{NAME}"),
    ]
    for request, obj in zip(peer.requests[5:], objs, strict=True):
        assert request.body == obj
    for request in peer.requests:
        assert request.headers["Content-Type"] == "application/apply-patch+yaml"
        assert request.query == {"fieldManager": ["fedsage"], "force": ["true"]}
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["authorization"] == "Bearer kube-secret-token"
    assert [i["kind"] for i in seen] == ["Namespace", "Secret", "Service", "Deployment", "APIRule"]


def test_api_errors_become_deployment_errors(tmp_path):
    with recording_peer() as peer:
        client = api_client(peer.kubeconfig(tmp_path))
        peer.answer(
            "PATCH",
            f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{NAME}",
            (
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 404,
                    "message": "the server could not find the requested resource",
                },
            ),
        )
        peer.answer(
            "PATCH",
            f"/api/v1/namespaces/{NS}",
            (
                403,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 403,
                    "message": 'namespaces "fedsage" is forbidden',
                },
            ),
        )
        with pytest.raises(
            DeploymentError, match=r"APIRule .* HTTP 404: the server could not"
        ) as err:
            apply_objects(client, objects()[3:])
        with pytest.raises(
            DeploymentError, match=r"403: namespaces .* forbidden.*credentials"
        ) as err2:
            apply_objects(client, objects()[:1])
    for exc in (err.value, err2.value):
        assert "kube-secret-token" not in str(exc)


def test_wait_for_rollout_with_progress(tmp_path):
    with recording_peer() as peer:
        client = api_client(peer.kubeconfig(tmp_path))
        path = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/status"
        peer.answer(
            "GET",
            path,
            (200, deployment(generation=3)),
            (200, deployment(updated=1)),
            (200, deployment(available=1)),
            (200, deployment()),
        )
        messages = []
        wait_for_rollout(
            client, NS, NAME, poll=0, progress=lambda e, i: messages.append(i["message"])
        )
    assert len(messages) == 4 and messages[-1].endswith("successfully rolled out")


def test_failed_rollout_reports_pods_and_events(tmp_path):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{NAME}-abc-1", "namespace": NS},
        "status": {
            "containerStatuses": [
                {
                    "name": "model",
                    "image": IMAGE,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": "Back-off pulling image",
                        }
                    },
                }
            ]
        },
    }
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "type": "Warning",
        "reason": "Failed",
        "message": "pull access denied (token expired?)",
        "metadata": {"name": "e1", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": f"{NAME}-abc-1", "namespace": NS},
    }
    noise = {**event, "involvedObject": {"kind": "Pod", "name": "other-pod"}, "message": "noise"}
    clock = iter(range(0, 1000, 10))
    with recording_peer() as peer:
        client = api_client(peer.kubeconfig(tmp_path))
        peer.answer(
            "GET",
            f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}/status",
            (200, deployment(available=0)),
        )
        peer.answer(
            "GET",
            f"/api/v1/namespaces/{NS}/pods",
            (200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}),
        )
        peer.answer(
            "GET",
            f"/api/v1/namespaces/{NS}/events",
            (
                200,
                {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [event, noise]},
            ),
        )
        with pytest.raises(DeploymentError) as err:
            wait_for_rollout(
                client,
                NS,
                NAME,
                timeout=30,
                poll=0,
                sleep=lambda s: None,
                clock=lambda: next(clock),
            )
        pods_request = next(r for r in peer.requests if r.path.endswith("/pods"))
    text = str(err.value)
    assert "timed out after 30 s" in text
    assert "ImagePullBackOff: Back-off pulling image" in text
    assert "pull access denied" in text and "noise" not in text
    assert pods_request.query == {"labelSelector": [f"app={NAME}"]}


def test_wait_for_apirule(tmp_path):
    path = f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{NAME}"
    rule = objects()[3]
    with recording_peer() as peer:
        client = api_client(peer.kubeconfig(tmp_path))
        peer.answer(
            "GET",
            path,
            (200, {**rule, "status": {"state": "Processing"}}),
            (200, {**rule, "status": {"state": "Ready"}}),
        )
        wait_for_apirule(client, NS, NAME, poll=0)
        peer.answer(
            "GET",
            path,
            (200, {**rule, "status": {"state": "Error", "description": "host already used"}}),
        )
        with pytest.raises(
            DeploymentError, match=r"not Ready: APIRule state Error: host already used"
        ):
            wait_for_apirule(client, NS, NAME, poll=0)


def test_delete_objects(tmp_path):
    with recording_peer() as peer:
        client = api_client(peer.kubeconfig(tmp_path))
        peer.answer(
            "DELETE",
            f"/api/v1/namespaces/{NS}/services/{NAME}",
            (404, {"kind": "Status", "apiVersion": "v1", "code": 404, "message": "gone"}),
        )
        deleted = delete_objects(client, objects())
    assert deleted == [f"APIRule {NAME}", f"Deployment {NAME}"]
    assert all(r.method == "DELETE" for r in peer.requests)
    assert not any(r.path == f"/api/v1/namespaces/{NS}" for r in peer.requests)


def test_unreachable_cluster(tmp_path):
    with recording_peer() as peer:
        kubeconfig = peer.kubeconfig(tmp_path)
    client = api_client(kubeconfig)  # the peer is gone: nothing listens there any more
    with pytest.raises(DeploymentError, match=r"cannot reach the cluster"):
        apply_objects(client, objects()[:1])
