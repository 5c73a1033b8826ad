"""``fedsage runtimes`` sub-commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from _cli import invoke

from fedsage.runtimes import Runtime
from fedsage.runtimes.build import MANIFEST, RUNTIMES_DIR_ENV
from fedsage.runtimes.catalog import load_spec


def fake_entry(root: Path, version: str, *, approximate: bool = False) -> Path:
    """A runtime folder as the cache holds it (the interpreter is fedsage's own)."""
    specs = load_spec(version)
    spec = specs.fallbacks[0] if approximate else specs.exact
    folder = root / spec.name
    (folder / "bin").mkdir(parents=True)
    os.symlink(sys.executable, folder / "bin" / "python")
    manifest = {
        "name": spec.name,
        "framework_version": version,
        "spec_hash": spec.spec_hash,
        "approximate": approximate,
        "python_version": "3.8.18",
        "packages": {"scikit-learn": spec.packages["scikit-learn"]},
        "built_at": 0,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def root(clean_runtime_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = clean_runtime_env / "runtimes"
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(path))
    return path


def test_list_shows_every_version(root: Path) -> None:
    fake_entry(root, "1.0-1")
    fake_entry(root, "0.23-1", approximate=True)
    result = invoke(["runtimes", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = next(line for line in lines if line.startswith("1.0-1 "))
    assert "3.8.18" in row and "1.0.2" in row and "exact" in row and "MB" in row
    row = next(line for line in lines if line.startswith("0.23-1 "))
    assert "approximate" in row and "1.1.3" in row
    row = next(line for line in lines if line.startswith("1.9-0 "))
    assert " no " in row and "1.9.0" in row


def test_path_and_remove(root: Path) -> None:
    approx = fake_entry(root, "1.0-1", approximate=True)
    exact = fake_entry(root, "1.0-1")
    result = invoke(["runtimes", "path", "1.0-1"])
    assert result.exit_code == 0 and result.output.strip() == str(exact)
    result = invoke(["runtimes", "remove", "1.0-1"])
    assert result.exit_code == 0, result.output
    assert not exact.exists() and not approx.exists()
    result = invoke(["runtimes", "path", "1.0-1"])
    assert result.exit_code == 1
    assert "fedsage runtimes build 1.0-1" in result.output


def test_errors_are_one_line_and_exit_1(root: Path) -> None:
    for args in (["build", "0.24-1"], ["path", "nope"], ["remove", "1.2-1"]):
        result = invoke(["runtimes", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error:"), result.output
    result = invoke(["runtimes", "build"])
    assert result.exit_code != 0


@pytest.mark.slow
def test_build_reuses_a_built_runtime(rt_121: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(rt_121.root.parent))
    result = invoke(["runtimes", "build", "1.2-1"])
    assert result.exit_code == 0, result.output
    assert "1.2-1: Python 3.9.18, scikit-learn 1.2.1 (exact)" in result.output
