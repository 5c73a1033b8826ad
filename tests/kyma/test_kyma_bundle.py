"""The serving bundle and safe extraction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from fedsage.errors import DeploymentError
from fedsage.kyma.cluster.bundle import build_bundle, safe_extract
from fedsage.kyma.cluster.layers import build_layer

from .conftest import make_tar


def test_bundle_layout_env_and_requirements(job_artifacts, tmp_path):
    model, code = job_artifacts
    bundle = build_bundle(model, tmp_path / "stage", code_tar=code, program="train.py")
    assert (bundle.root / "opt/ml/model/model.joblib").stat().st_size == 300_000
    assert (bundle.root / "opt/ml/model/meta/info.json").read_bytes() == b'{"k": 1}'
    assert (bundle.root / "opt/ml/code/lib/helpers.py").is_file()
    assert bundle.env == {
        "SAGEMAKER_PROGRAM": "train.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code",
    }
    assert bundle.requirements == ("numpy==1.26.4", "scikit-learn")


def test_bundle_without_code(job_artifacts, tmp_path):
    model, _ = job_artifacts
    bundle = build_bundle(model, tmp_path / "stage")
    assert bundle.env == {}
    assert bundle.requirements == ()


def test_bundle_program_must_exist(job_artifacts, tmp_path):
    model, code = job_artifacts
    with pytest.raises(DeploymentError, match=r"'missing.py' is not a file"):
        build_bundle(model, tmp_path / "stage", code_tar=code, program="missing.py")
    with pytest.raises(DeploymentError, match=r"without code"):
        build_bundle(model, tmp_path / "stage", program="train.py")


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info.size = len(data) if info.isfile() else 0
        tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _info(name: str, type_: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (_info("/etc/passwd"), "absolute path"),
        (_info("../evil.py"), "contains '..'"),
        (_info("a/../../evil.py"), "contains '..'"),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "is a symbolic link"),
        (_info("a/link", tarfile.SYMTYPE, "../../x"), "is a symbolic link"),
        (_info("hard", tarfile.LNKTYPE, "../x"), "is a hard link"),
        (_info("dev", tarfile.CHRTYPE), "device"),
        (_info("fifo", tarfile.FIFOTYPE), "device"),
    ],
)
def test_safe_extract_refuses(tmp_path, info, message):
    archive = _tar_with(tmp_path / "bad.tar.gz", info, b"x")
    with pytest.raises(DeploymentError, match=message):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_safe_extract_refuses_even_inner_links(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"hello"
        info = _info("a/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(_info("a/alias.txt", tarfile.SYMTYPE, "file.txt"))
    with pytest.raises(DeploymentError, match=r"member 'a/alias\.txt' is a symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_archive(tmp_path):
    with pytest.raises(DeploymentError, match=r"does not exist"):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "out")


def test_layers_are_reproducible(job_artifacts, tmp_path):
    model, code = job_artifacts
    first = build_bundle(model, tmp_path / "one", code_tar=code, program="train.py")
    second = build_bundle(model, tmp_path / "two", code_tar=code, program="train.py")
    (second.root / "opt/ml/code/train.py").touch()  # a new mtime must not matter
    a = build_layer([(first.root / "opt", "opt")], tmp_path / "a.tar.gz")
    b = build_layer([(second.root / "opt", "opt")], tmp_path / "b.tar.gz")
    assert (a.digest, a.diff_id, a.size) == (b.digest, b.diff_id, b.size)
    assert a.digest != a.diff_id
    with tarfile.open(a.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:3] == ["opt", "opt/ml", "opt/ml/code"]
    assert {(m.uid, m.gid, m.mtime, m.uname) for m in members} == {(0, 0, 0, "")}
    # a changed model changes the layer
    make_tar(model, {"model.joblib": b"other"})
    third = build_bundle(model, tmp_path / "three", code_tar=code, program="train.py")
    c = build_layer([(third.root / "opt", "opt")], tmp_path / "c.tar.gz")
    assert c.digest != a.digest


def test_layer_prefix_adds_parents(tmp_path):
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg/__init__.py").write_text("")
    layer = build_layer([(site, "opt/fedsage/site-packages")], tmp_path / "req.tar.gz")
    with tarfile.open(layer.path) as tar:
        assert tar.getnames() == [
            "opt",
            "opt/fedsage",
            "opt/fedsage/site-packages",
            "opt/fedsage/site-packages/pkg",
            "opt/fedsage/site-packages/pkg/__init__.py",
        ]
