"""Locking, interruption and failure of builds, on a tiny real runtime (six only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fedsage.errors import RuntimeBuildError
from fedsage.runtimes.build import BUILD_LOG, build_runtime, load_built
from fedsage.runtimes.catalog import RuntimeSpec

MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
TINY = RuntimeSpec("tiny-test", MINOR, {"six": "1.16.0"}, verify=("six",))

# Builds TINY in ROOT (argv[1]); with argv[2] = a marker path, it stops for good as soon
# as the install step starts, after creating the marker (the test then kills it).
BUILDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from fedsage.runtimes.build import build_runtime
    from fedsage.runtimes.catalog import RuntimeSpec

    spec = RuntimeSpec("tiny-test", "@MINOR@", {"six": "1.16.0"}, verify=("six",))
    marker = Path(sys.argv[2]) if len(sys.argv) > 2 else None

    def progress(message, fraction):
        if marker is not None and message.startswith("installing"):
            marker.write_text("installing")
            time.sleep(600)

    runtime = build_runtime(spec, Path(sys.executable), progress=progress, root=Path(sys.argv[1]))
    print(json.dumps({"python": str(runtime.python), "root": str(runtime.root)}))
    """
).replace("@MINOR@", MINOR)


def builder(root: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(root), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def builds(root: Path) -> list[dict]:
    log = root / BUILD_LOG
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_two_processes_build_one_runtime(tmp_path: Path) -> None:
    procs = [builder(tmp_path), builder(tmp_path)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert results[0] == results[1]
    assert [b["name"] for b in builds(tmp_path)] == [TINY.name]
    assert load_built(TINY, tmp_path) is not None
    assert not list(tmp_path.glob(".build-*"))


def test_interrupted_build_is_not_used_and_is_cleaned(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    root = tmp_path / "root"
    proc = builder(root, str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(root.glob(".build-*"))  # the half-built venv is there...
    assert load_built(TINY, root) is None  # ...but nothing looks usable
    assert not (root / TINY.name).exists()
    assert builds(root) == []

    runtime = build_runtime(TINY, Path(sys.executable), root=root)
    assert runtime.root == root / TINY.name
    assert [b["name"] for b in builds(root)] == [TINY.name]
    assert not list(root.glob(".build-*"))
    out = subprocess.run(
        [str(runtime.python), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1.16.0"


def test_failed_install_quotes_uv_and_leaves_nothing(tmp_path: Path) -> None:
    bad = RuntimeSpec("bad-test", MINOR, {"six": "0.0.404"}, verify=("six",))
    with pytest.raises(RuntimeBuildError) as info:
        build_runtime(bad, Path(sys.executable), root=tmp_path)
    message = str(info.value)
    assert "installing the packages of bad-test" in message and "six" in message
    assert "uv said" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks"]


def test_failed_verification_leaves_nothing(tmp_path: Path) -> None:
    spec = RuntimeSpec("unverifiable", MINOR, {"six": "1.16.0"}, verify=("six", "no_such_mod"))
    with pytest.raises(RuntimeBuildError, match="no_such_mod"):
        build_runtime(spec, Path(sys.executable), root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks"]


def test_wrong_interpreter_is_refused(tmp_path: Path) -> None:
    spec = RuntimeSpec("wrong-python", "3.7", {"six": "1.16.0"}, verify=("six",))
    with pytest.raises(RuntimeBuildError, match=r"needs 3\.7"):
        build_runtime(spec, Path(sys.executable), root=tmp_path)
