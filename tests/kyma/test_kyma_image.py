"""Image assembly and push, against a real OCI registry (Debian's docker-registry)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from fedsage.errors import DeploymentError
from fedsage.kyma.cluster.bundle import build_bundle
from fedsage.kyma.cluster.image import (
    DOCKER,
    OCI,
    BaseImage,
    base_from_registry,
    plan_image,
    push_image,
    scratch_base,
)
from fedsage.kyma.cluster.layers import build_layer
from fedsage.kyma.cluster.oci_layout import base_from_oci_layout, write_oci_layout
from fedsage.kyma.cluster.registry_client import RegistryClient


class Recorder:
    """Counts the requests a RegistryClient sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, str(request.url)))

    def count(self, method: str, contains: str = "") -> int:
        return sum(1 for m, u in self.requests if m == method and contains in u)


def client_for(server, recorder: Recorder | None = None, chunk_size: int = 64 * 1024):
    hooks = {"request": [recorder]} if recorder else None
    return RegistryClient(server.url, chunk_size=chunk_size, event_hooks=hooks)


def bundle_layer(job_artifacts, tmp_path: Path):
    model, code = job_artifacts
    bundle = build_bundle(model, tmp_path / "stage", code_tar=code, program="train.py")
    return bundle, build_layer([(bundle.root / "opt", "opt")], tmp_path / "bundle.tar.gz")


def base_layer(tmp_path: Path, payload: bytes = b"#!/bin/sh\necho serving\n"):
    root = tmp_path / "base-root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/serve").write_bytes(payload)
    (root / "usr/local/bin/serve").chmod(0o755)
    return build_layer([(root / "usr", "usr")], tmp_path / "base.tar.gz")


def verify_pulled(client: RegistryClient, repository: str, tag: str, digest: str):
    """Pull manifest, config and every layer back and check digests, sizes, diff_ids."""
    body, media_type, got = client.get_manifest(
        repository, tag, [OCI["manifest"], DOCKER["manifest"]]
    )
    assert got == digest
    manifest = json.loads(body)
    assert media_type == manifest["mediaType"]
    config_bytes = client.get_blob(repository, manifest["config"]["digest"])
    assert len(config_bytes) == manifest["config"]["size"]
    config = json.loads(config_bytes)
    diff_ids = []
    for layer in manifest["layers"]:
        blob = client.get_blob(repository, layer["digest"])
        assert len(blob) == layer["size"]
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
        diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest())
    assert config["rootfs"]["diff_ids"] == diff_ids
    return manifest, config


def test_push_scratch_image_pull_back_and_skopeo(oci_registry, job_artifacts, tmp_path, skopeo):
    bundle, layer = bundle_layer(job_artifacts, tmp_path)
    plan = plan_image(scratch_base(), [layer], env=bundle.env)
    recorder = Recorder()
    events: list[tuple[str, dict]] = []
    with client_for(oci_registry, recorder) as client:
        pushed = push_image(
            plan,
            client,
            "models/churn",
            "v1",
            workdir=tmp_path / "w",
            progress=lambda e, i: events.append((e, i)),
        )
        assert pushed.reference == f"{oci_registry.host}/models/churn@{plan.digest}"
        manifest, config = verify_pulled(client, "models/churn", "v1", plan.digest)
    assert manifest["mediaType"] == OCI["manifest"]
    assert manifest["layers"][0]["mediaType"] == OCI["layer"]
    run = config["config"]
    assert run["Cmd"] == ["serve"]
    assert run["ExposedPorts"] == {"8080/tcp": {}}
    assert run["WorkingDir"] == "/opt/ml/code"
    assert "SAGEMAKER_PROGRAM=train.py" in run["Env"]
    assert "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code" in run["Env"]
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    # the 300 kB layer went up in 64 KiB PATCH chunks, the config in one PUT
    assert recorder.count("PATCH") == -(-layer.size // (64 * 1024))
    assert [i["action"] for e, i in events if e == "blob"] == ["uploaded", "uploaded"]
    out = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", f"docker://{oci_registry.host}/models/churn:v1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    inspected = json.loads(out.stdout)
    assert inspected["Digest"] == plan.digest
    assert inspected["Layers"] == [layer.digest]
    assert inspected["Architecture"] == "amd64"

    # re-push: every blob is found by HEAD, the tag already points at the digest
    again = Recorder()
    with client_for(oci_registry, again) as client:
        push_image(plan, client, "models/churn", "v1", workdir=tmp_path / "w")
    assert again.count("PATCH") == again.count("PUT") == again.count("POST") == 0
    assert again.count("HEAD", "/blobs/") == 2


def test_registry_base_is_mounted_and_docker_family_kept(oci_registry, job_artifacts, tmp_path):
    base_l = base_layer(tmp_path)
    docker_base = BaseImage(family="docker", config=scratch_base().config)
    with client_for(oci_registry) as client:
        base_plan = plan_image(
            docker_base,
            [base_l],
            command=None,
            working_dir=None,
            env={"PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8"},
        )
        push_image(base_plan, client, "library/sklearn-base", "1.2-1", workdir=tmp_path / "w")
        base = base_from_registry(client, "library/sklearn-base", "1.2-1")
    assert base.family == "docker"
    bundle, layer = bundle_layer(job_artifacts, tmp_path)
    plan = plan_image(base, [layer], env={**bundle.env, "LANG": "en_US.UTF-8"})
    recorder = Recorder()
    events: list[dict] = []
    with client_for(oci_registry, recorder) as client:
        push_image(
            plan,
            client,
            "models/mounted",
            "v1",
            workdir=tmp_path / "w",
            progress=lambda e, i: events.append(i),
        )
        manifest, config = verify_pulled(client, "models/mounted", "v1", plan.digest)
    assert [i["action"] for i in events[:-1]] == ["uploaded", "mounted", "uploaded"]
    assert recorder.count("POST", "mount=") == 1
    assert manifest["mediaType"] == DOCKER["manifest"]
    assert manifest["config"]["mediaType"] == DOCKER["config"]
    assert {ly["mediaType"] for ly in manifest["layers"]} == {DOCKER["layer"]}
    assert config["rootfs"]["diff_ids"] == [base_l.diff_id, layer.diff_id]
    env = config["config"]["Env"]
    assert "PATH=/usr/local/bin:/usr/bin" in env
    assert "LANG=en_US.UTF-8" in env and "LANG=C.UTF-8" not in env


def test_index_base_resolves_amd64(oci_registry, tmp_path):
    base_l = base_layer(tmp_path, b"amd64")
    with client_for(oci_registry) as client:
        plan = plan_image(scratch_base(), [base_l], command=None)
        push_image(plan, client, "library/multi", "amd64-only", workdir=tmp_path / "w")
        index = {
            "schemaVersion": 2,
            "mediaType": OCI["index"],
            "manifests": [
                {
                    "mediaType": OCI["manifest"],
                    "digest": plan.digest,
                    "size": len(plan.manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for arch in ("arm64", "amd64")
            ],
        }
        client.put_manifest("library/multi", "latest", json.dumps(index).encode(), OCI["index"])
        base = base_from_registry(client, "library/multi", "latest")
    assert base.digest == plan.digest
    assert [b.digest for b in base.layers] == [base_l.digest]


def test_foreign_registry_base_is_copied(oci_registry, second_registry, job_artifacts, tmp_path):
    base_l = base_layer(tmp_path, b"foreign")
    with client_for(second_registry) as foreign:
        push_image(
            plan_image(scratch_base(), [base_l], command=None),
            foreign,
            "sagemaker-scikit-learn",
            "1.2-1",
            workdir=tmp_path / "w",
        )
        base = base_from_registry(foreign, "sagemaker-scikit-learn", "1.2-1")
        _, layer = bundle_layer(job_artifacts, tmp_path)
        plan = plan_image(base, [layer])
        events: list[dict] = []
        with client_for(oci_registry) as client:
            push_image(
                plan,
                client,
                "models/copied",
                "v1",
                workdir=tmp_path / "w",
                progress=lambda e, i: events.append(i),
            )
            verify_pulled(client, "models/copied", "v1", plan.digest)
    assert [i["action"] for i in events[:-1]] == ["uploaded"] * 3


def test_oci_layout_base(oci_registry, job_artifacts, tmp_path):
    base_l = base_layer(tmp_path, b"layout")
    layout = write_oci_layout(
        plan_image(scratch_base(), [base_l], command=None), tmp_path / "layout", "python-3.11"
    )
    base = base_from_oci_layout(layout, "python-3.11")
    assert [b.digest for b in base.layers] == [base_l.digest]
    _, layer = bundle_layer(job_artifacts, tmp_path)
    plan = plan_image(base, [layer])
    with client_for(oci_registry) as client:
        push_image(plan, client, "models/from-layout", "v1", workdir=tmp_path / "w")
        manifest, _ = verify_pulled(client, "models/from-layout", "v1", plan.digest)
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base.digest
    with pytest.raises(DeploymentError, match=r"not a readable OCI image layout"):
        base_from_oci_layout(tmp_path / "nowhere")


def test_corrupted_layer_fails_before_the_manifest(oci_registry, job_artifacts, tmp_path):
    _, layer = bundle_layer(job_artifacts, tmp_path)
    plan = plan_image(scratch_base(), [layer])
    data = bytearray(layer.path.read_bytes())
    data[-100] ^= 0xFF
    layer.path.write_bytes(bytes(data))
    with client_for(oci_registry) as client:
        with pytest.raises(DeploymentError, match=r"changed after the image was assembled"):
            push_image(plan, client, "models/corrupt", "v1", workdir=tmp_path / "w")
        assert client.manifest_digest("models/corrupt", "v1", [OCI["manifest"]]) is None
        # the upload itself checks too: the session is cancelled, nothing is committed
        with pytest.raises(DeploymentError, match=r"does not match its digest"):
            client.upload_blob("models/corrupt", layer.path, layer.digest)
        assert not client.blob_exists("models/corrupt", layer.digest)


def test_registry_errors_are_deployment_errors(oci_registry, tmp_path):
    plan = plan_image(scratch_base(), [base_layer(tmp_path)])
    with client_for(oci_registry) as client:
        with pytest.raises(DeploymentError, match=r"MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN"):
            client.put_manifest("models/missing", "v1", plan.manifest, plan.media_type)
        with pytest.raises(DeploymentError, match=r"not a valid registry name"):
            push_image(plan, client, "Models/Upper", "v1", workdir=tmp_path)
        with pytest.raises(DeploymentError, match=r"tag"):
            push_image(plan, client, "models/x", "-bad", workdir=tmp_path)
    with (
        RegistryClient("http://127.0.0.1:9") as dead,
        pytest.raises(DeploymentError, match=r"cannot reach the registry"),
    ):
        dead.ping()


def test_authorization_only_to_the_registry_host(tmp_path):
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Authorization")))
        if request.url.host == "registry.example":
            return httpx.Response(307, headers={"Location": "https://storage.example/blob?sig=1"})
        return httpx.Response(200, content=b"{}")

    token = "QVdTOnNlY3JldC1wYXNzd29yZA=="  # base64("AWS:secret-password")
    client = RegistryClient(
        "https://registry.example", token=token, transport=httpx.MockTransport(handler)
    )
    digest = "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert client.get_blob("repo", digest) == b"{}"
    assert seen == [("registry.example", f"Basic {token}"), ("storage.example", None)]
    assert token not in repr(client) and "secret" not in repr(client)
