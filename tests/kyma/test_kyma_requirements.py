"""The requirements layer: real uv resolution against PyPI for the 0.23-1 image (Python
3.7), pushed through ``fedsage.kyma.cluster.deploy`` to the real local registry
(moto for ECR, the recording peer for Kubernetes), pulled back and read."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import httpx
import pytest
from moto import mock_aws

from fedsage.errors import DeploymentError
from fedsage.kyma import cluster
from fedsage.kyma.cluster import requirements_layer
from fedsage.kyma.cluster.image import MANIFEST_TYPES, plan_image, push_image, scratch_base
from fedsage.kyma.cluster.layers import build_layer
from fedsage.kyma.cluster.manifests import KymaSpec, build_manifests
from fedsage.kyma.cluster.registry_client import RegistryClient
from fedsage.kyma.cluster.requirements_layer import REQUIREMENTS_DIR, pythonpath_env

from .conftest import make_tar
from .k8s_peer import recording_peer

NS = "fedsage"
FRAMEWORK_VERSION = "0.23-1"  # image Python 3.7


class Recorder:
    """Counts the requests a RegistryClient sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, str(request.url)))

    def count(self, method: str, contains: str = "") -> int:
        return sum(1 for m, u in self.requests if m == method and contains in u)


def _artifacts(tmp_path: Path, requirements: bytes) -> tuple[Path, Path]:
    model = make_tar(tmp_path / "model.tar.gz", {"model.joblib": b"model bytes"})
    code = make_tar(
        tmp_path / "sourcedir.tar.gz",
        {"train.py": b"import tabulate\n", "requirements.txt": requirements},
    )
    return model, code


def _base(oci_registry, tmp_path: Path, monkeypatch) -> None:
    """A base image whose config already has a PYTHONPATH."""
    (tmp_path / "base" / "usr").mkdir(parents=True)
    (tmp_path / "base" / "usr" / "serve").write_text("#!/bin/sh\n")
    layer = build_layer([(tmp_path / "base" / "usr", "usr")], tmp_path / "base.tar.gz")
    plan = plan_image(scratch_base(), [layer], env={"PYTHONPATH": "/usr/lib/base"}, command=None)
    with RegistryClient(oci_registry.url) as client:
        push_image(plan, client, "sagemaker-base", "0.23-1", workdir=tmp_path / "w0")
    monkeypatch.setenv("FEDSAGE_KYMA_BASE_IMAGE", f"{oci_registry.host}/sagemaker-base:0.23-1")
    monkeypatch.setenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", "1")


def _deploy(peer, registry, name, model, code, tmp_path, events) -> str:
    dep = build_manifests(
        KymaSpec(name=name, image="r/x@sha256:" + "0" * 64, allow_unauthenticated=True)
    )[2]
    dep["metadata"]["generation"] = 1
    dep["status"] = {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1}
    dep["status"]["replicas"] = 1
    peer.answer("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/status", (200, dep))
    peer.answer(
        "GET",
        f"/apis/gateway.kyma-project.io/v2/namespaces/{NS}/apirules/{name}",
        (200, {"status": {"state": "Ready"}}),
    )
    return cluster.deploy(
        name=name,
        model_tar=model,
        code_tar=code,
        program="train.py",
        framework_version=FRAMEWORK_VERSION,
        profile_name="dwc",
        kubeconfig=peer.kubeconfig(tmp_path),
        progress=lambda e, i: events.append((e, i)),
        job_name="reqs-job",
        registry=registry,
        poll=0,
    )


def _blob(oci_registry, name: str, digest: str) -> bytes:
    answer = httpx.get(f"{oci_registry.url}/v2/{name}/blobs/{digest}", follow_redirects=True)
    assert answer.status_code == 200
    return answer.content


@mock_aws
def test_requirements_layer_pushed_pulled_back_and_reused(
    aws_env, oci_registry, tmp_path, monkeypatch
):
    name = "reqs-2025-01-02-03-04-05"
    _base(oci_registry, tmp_path, monkeypatch)
    # tabulate is not in the 0.23-1 image; six is (1.15.0), so it stays out of the layer
    model, code = _artifacts(tmp_path, b"tabulate==0.9.0  # tables\nsix\n")
    events: list = []
    with recording_peer() as peer, RegistryClient(oci_registry.url) as registry:
        _deploy(peer, registry, name, model, code, tmp_path, events)
    assert ("step", {"step": "requirements"}) in events
    assert not [i for e, i in events if e == "warning" and "requirements" in i["message"]]
    uploaded = [i["digest"] for e, i in events if e == "blob" and i["action"] == "uploaded"]
    assert len(uploaded) == 3  # config, requirements layer, bundle (the base is mounted)

    manifest = httpx.get(
        f"{oci_registry.url}/v2/{name}/manifests/latest",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    ).json()
    assert len(manifest["layers"]) == 3  # base, requirements, bundle
    req_digest = manifest["layers"][1]["digest"]
    with tarfile.open(fileobj=io.BytesIO(_blob(oci_registry, name, req_digest))) as tar:
        names = tar.getnames()
        metadata = tar.extractfile("opt/fedsage/requirements/tabulate-0.9.0.dist-info/METADATA")
        assert metadata is not None and b"Version: 0.9.0" in metadata.read()
    assert "opt/fedsage/requirements/tabulate/__init__.py" in names
    assert not [n for n in names if "/six" in n or "/bin" in n]
    bundle_blob = _blob(oci_registry, name, manifest["layers"][2]["digest"])
    with tarfile.open(fileobj=io.BytesIO(bundle_blob)) as tar:
        assert "opt/ml/code/train.py" in tar.getnames()
    config = json.loads(_blob(oci_registry, name, manifest["config"]["digest"]))
    env = config["config"]["Env"]
    assert f"PYTHONPATH=/usr/lib/base:{REQUIREMENTS_DIR}" in env
    assert len(config["rootfs"]["diff_ids"]) == 3
    cached = sorted(
        (Path(os.environ["FEDSAGE_HOME"]) / "kyma-layers").glob("requirements-0.23-1-*")
    )
    assert sorted(p.suffix for p in cached) == [".gz", ".json"]

    # a re-deploy re-uses the cached layer (uv is not run) and uploads nothing
    def no_uv(*args, **kwargs):
        raise AssertionError("uv ran again instead of re-using the cached layer")

    monkeypatch.setattr(requirements_layer, "_run_uv", no_uv)
    recorder = Recorder()
    events2: list = []
    with (
        recording_peer() as peer,
        RegistryClient(oci_registry.url, event_hooks={"request": [recorder]}) as registry,
    ):
        _deploy(peer, registry, name, model, code, tmp_path, events2)
    assert {i["action"] for e, i in events2 if e == "blob"} == {"exists"}
    assert recorder.count("PATCH") == recorder.count("POST") == recorder.count("PUT") == 0
    assert recorder.count("HEAD", "/blobs/") == 4
    assert [i["action"] for e, i in events2 if e == "manifest"] == ["exists"]


@mock_aws
def test_requirement_conflicting_with_the_image_fails_before_any_push(
    aws_env, oci_registry, tmp_path, monkeypatch
):
    name = "reqs-conflict-2025-01-02"
    _base(oci_registry, tmp_path, monkeypatch)
    model, code = _artifacts(tmp_path, b"numpy==2.0.0\n")  # the image pins numpy 1.19.2
    recorder = Recorder()
    with (
        recording_peer() as peer,
        RegistryClient(oci_registry.url, event_hooks={"request": [recorder]}) as registry,
        pytest.raises(DeploymentError) as failure,
    ):
        _deploy(peer, registry, name, model, code, tmp_path, [])
    message = str(failure.value)
    assert "requirements.txt" in message and "uv says" in message
    assert "numpy==2.0.0" in message and "numpy==1.19.2" in message  # quoted from uv
    assert recorder.requests == []  # nothing pushed, not even a ping
    tags = httpx.get(f"{oci_registry.url}/v2/{name}/tags/list")
    assert tags.status_code == 404


def test_sdist_only_requirement_is_a_clear_error(tmp_path):
    with pytest.raises(DeploymentError, match=r"(?s)code/requirements\.txt.*no usable wheels"):
        requirements_layer.build_requirements_layer(
            ["docopt==0.6.2"], "0.23-1", source="code/requirements.txt", cache_dir=tmp_path
        )
    assert not list(tmp_path.glob("requirements-*"))  # nothing cached after a failure


def test_requirements_the_image_has_give_no_layer(tmp_path):
    # retrying 1.3.3 exists only as an sdist: it must not even be resolved
    lines = ["scikit-learn", "numpy==1.19.2", "retrying==1.3.3", "Six"]
    assert requirements_layer.build_requirements_layer(lines, "0.23-1", cache_dir=tmp_path) is None


def test_pythonpath_env():
    assert pythonpath_env({"config": {"Env": ["A=1"]}}) == {"PYTHONPATH": REQUIREMENTS_DIR}
    assert pythonpath_env({"config": None}) == {"PYTHONPATH": REQUIREMENTS_DIR}
    base = {"config": {"Env": [f"PYTHONPATH=/x:{REQUIREMENTS_DIR}"]}}
    assert pythonpath_env(base) == {"PYTHONPATH": f"/x:{REQUIREMENTS_DIR}"}


def test_dependencies_the_image_has_are_left_out(tmp_path):
    # html5lib 1.1 needs six (in the image at 1.15.0) and webencodings (not in it)
    layer = requirements_layer.build_requirements_layer(
        ["html5lib==1.1"], "0.23-1", cache_dir=tmp_path
    )
    assert layer is not None
    with tarfile.open(layer.path) as tar:
        tops = {n.split("/")[3] for n in tar.getnames() if n.count("/") >= 3}
    assert {"html5lib", "webencodings", "html5lib-1.1.dist-info"} <= tops
    assert not [t for t in tops if t.startswith("six")]
    meta = json.loads(
        layer.path.with_name(layer.path.name[: -len(".tar.gz")] + ".json").read_text()
    )
    assert sorted(meta["installed"]) == ["html5lib==1.1", "webencodings==0.5.1"]
