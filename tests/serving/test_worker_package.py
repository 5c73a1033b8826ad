"""The worker as a package: Python 3.7 compiles it, it runs as a folder, one framing module."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from fedsage.runtimes import Runtime, resolve_runtime
from fedsage.serving import supervisor
from fedsage.serving._worker import fedsage_worker
from fedsage.serving._worker.fedsage_worker import framing
from fedsage.serving.supervisor import WORKER_PATH

INSIDE = Path(supervisor.__file__).parents[1] / "runtimes" / "_inside"


@pytest.fixture
def rt_0231() -> Runtime:
    """The default runtime (0.23-1: the image's Python 3.7), from the shared cache."""
    runtime = resolve_runtime("0.23-1")
    assert runtime.python_version.startswith("3.7."), runtime.python_version
    return runtime


def _compileall(python: Path, *folders: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "compileall", "-q", *map(str, folders)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_python37_of_the_default_runtime_compiles_the_worker(
    rt_0231: Runtime, tmp_path: Path
) -> None:
    # Copies, so that no __pycache__ lands in the source tree.
    worker = shutil.copytree(WORKER_PATH, tmp_path / "_worker")
    inside = shutil.copytree(INSIDE, tmp_path / "_inside")
    done = _compileall(rt_0231.python, worker, inside)
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = {p.name.split(".")[0] for p in worker.rglob("__pycache__/*.cpython-37.pyc")}
    assert {"__main__", "protocol", "service", "codecs", "zygote", "framing"} <= compiled
    # ... and the check can fail: syntax newer than 3.7 is refused
    (worker / "fedsage_worker" / "newer.py").write_text("def f(a, /):\n    return (b := a)\n")
    done = _compileall(rt_0231.python, worker)
    assert done.returncode != 0 and "newer.py" in done.stdout + done.stderr


def test_the_folder_runs_without_fedsage_installed(rt_0231: Runtime) -> None:
    # -I: no PYTHONPATH, no user site; the runtime has no fedsage of its own
    probe = subprocess.run(
        [str(rt_0231.python), "-I", "-c", "import fedsage"], capture_output=True, check=False
    )
    assert probe.returncode != 0
    done = subprocess.run(
        [str(rt_0231.python), "-I", str(WORKER_PATH), "--help"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--control" in done.stdout and "--model-dir" in done.stdout


def test_nothing_at_the_top_of_the_folder_can_shadow_a_module() -> None:
    # The folder is sys.path[0] of every worker: a codecs.py there would replace Python's.
    importable = sorted(
        p.name
        for p in WORKER_PATH.iterdir()
        if p.suffix in (".py", ".so", ".pyc")
        or (p.is_dir() and p.name.isidentifier() and p.name != "__pycache__")
    )
    assert importable == ["__init__.py", "__main__.py", "fedsage_worker"]


def test_one_framing_module_and_one_body_limit() -> None:
    assert supervisor.send_message is framing.send_message
    assert supervisor.recv_message is framing.recv_message
    assert supervisor.DEFAULT_MAX_BODY is fedsage_worker.DEFAULT_MAX_BODY == 6 * 1024 * 1024


def test_framing_carries_words_and_descriptors(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    files = [open(tmp_path / f"f{i}", "w+") for i in range(framing.MAX_FDS)]  # noqa: SIM115
    try:
        framing.send_message(ours, ["fork", 3], [f.fileno() for f in files])
        words, fds = framing.recv_message(theirs)
        assert words == ["fork", "3"] and len(fds) == framing.MAX_FDS
        for i, fd in enumerate(fds):  # the same open files, new descriptors
            assert os.fstat(fd).st_ino == os.fstat(files[i].fileno()).st_ino
            os.close(fd)
        with pytest.raises(BlockingIOError):
            framing.recv_message(theirs, block=False)
        with pytest.raises(ValueError, match="descriptors"):
            framing.send_message(ours, ["x"], [files[0].fileno()] * (framing.MAX_FDS + 1))
        ours.close()
        assert framing.recv_message(theirs) == ([], [])
    finally:
        for f in files:
            f.close()
        ours.close()
        theirs.close()
