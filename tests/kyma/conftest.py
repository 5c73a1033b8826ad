"""Fixtures for the Kyma tests: a real OCI registry (Debian's ``docker-registry``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RegistryServer:
    url: str
    pid: int
    root: Path

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


def _start_registry(tmp: Path, htpasswd: Path | None = None) -> tuple[subprocess.Popen, str]:
    if not os.path.exists(REGISTRY_BIN):
        raise RuntimeError(
            f"{REGISTRY_BIN} is missing: apt-get install -y docker-registry (see docs/kyma.md)"
        )
    port = free_port()
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    with open(tmp / "registry.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "registry.log").read_text())
        try:
            if httpx.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("docker-registry did not start in 15 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # this process only, by its PID
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real distribution registry on 127.0.0.1 (no auth), stopped by PID."""
    tmp = tmp_path_factory.mktemp("registry")
    proc, url = _start_registry(tmp)
    try:
        yield RegistryServer(url=url, pid=proc.pid, root=tmp)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Another registry, standing for a foreign one (base images are copied, not mounted)."""
    tmp = tmp_path_factory.mktemp("registry2")
    proc, url = _start_registry(tmp)
    try:
        yield RegistryServer(url=url, pid=proc.pid, root=tmp)
    finally:
        _stop(proc)


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    """Write a gzip tar with the given members (plain files)."""
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def job_artifacts(tmp_path: Path) -> tuple[Path, Path]:
    """A model.tar.gz and a sourcedir.tar.gz as a training job leaves them."""
    model = make_tar(
        tmp_path / "model.tar.gz",
        {"model.joblib": os.urandom(300_000), "meta/info.json": b'{"k": 1}'},
    )
    code = make_tar(
        tmp_path / "sourcedir.tar.gz",
        {
            "train.py": b"def model_fn(model_dir):\n    return None\n",
            "requirements.txt": b"# deps\nnumpy==1.26.4\n\nscikit-learn  # the model\n",
            "lib/helpers.py": b"X = 1\n",
        },
    )
    return model, code


@pytest.fixture
def skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        raise RuntimeError("skopeo is missing: apt-get install -y skopeo")
    return path


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake AWS credentials (profile ``dwc``, eu-central-1) for moto, and a fresh FEDSAGE_HOME."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    (tmp_path / "aws-config").write_text("[profile dwc]\nregion = eu-central-1\n")
    (tmp_path / "aws-credentials").write_text(
        "[dwc]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    for var in ("FEDSAGE_KYMA_JWT_ISSUER", "FEDSAGE_KYMA_JWKS_URI"):
        monkeypatch.delenv(var, raising=False)
