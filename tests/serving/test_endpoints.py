"""Local endpoint lifecycle, archive safety and the ``fedsage endpoints`` commands."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import invoke

from fedsage._archive import extract_safely
from fedsage._process import alive
from fedsage.errors import ConfigurationError, EndpointError, InvocationError
from fedsage.runtimes.base import Runtime, host_runtime
from fedsage.serving import (
    create_endpoint,
    delete_endpoint,
    describe_endpoint,
    invoke_endpoint,
    list_endpoints,
)

from .conftest import make_tar


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    for endpoint in list_endpoints():  # never leave a server behind
        delete_endpoint(endpoint["EndpointName"])


@pytest.fixture
def np_tar(tmp_path: Path, np_model_dir: Path) -> Path:
    return make_tar(np_model_dir, tmp_path / "model.tar.gz")


def test_lifecycle(home: Path, np_tar: Path) -> None:
    started = time.monotonic()
    described = create_endpoint(
        "ep-1",
        model_tar=np_tar,
        code_tar=None,
        program="inference.py",
        runtime=host_runtime(),
        workers=1,
    )
    elapsed = time.monotonic() - started
    assert described["EndpointStatus"] == "InService"
    assert described["Local"]["deploy_seconds"] <= elapsed
    pid = described["Local"]["pid"]
    assert alive(pid)

    answer = invoke_endpoint("ep-1", "1,2\n3,4", "text/csv", "text/csv")
    assert answer == (b"3.0\n7.0\n", "text/csv; charset=utf-8")
    with pytest.raises(InvocationError) as caught:
        invoke_endpoint("ep-1", "1,2", "text/plain")
    assert caught.value.status_code == 415 and "text/plain" in caught.value.body

    with pytest.raises(EndpointError, match=r"already exists.*fedsage endpoints delete ep-1"):
        create_endpoint(
            "ep-1", model_tar=np_tar, code_tar=None, program="inference.py", runtime=host_runtime()
        )

    assert [e["EndpointName"] for e in list_endpoints()] == ["ep-1"]
    state = json.loads((home / "endpoints" / "ep-1" / "state.json").read_text())
    delete_endpoint("ep-1")
    assert state["zygote"] and state["workers"]
    assert not alive(pid) and not any(alive(w) for w in [*state["workers"], state["zygote"]])
    assert not (home / "endpoints" / "ep-1").exists()
    assert list_endpoints() == []
    with pytest.raises(EndpointError, match="no endpoint named"):
        describe_endpoint("ep-1")


def test_code_tar_and_stale_detection(home: Path, tmp_path: Path, np_model_dir: Path) -> None:
    model_only = tmp_path / "m"
    model_only.mkdir()
    (model_only / "weights.txt").write_text("nothing")
    code = tmp_path / "c"
    code.mkdir()
    (code / "serve.py").write_text((np_model_dir / "inference.py").read_text())
    create_endpoint(
        "stale",
        model_tar=make_tar(model_only, tmp_path / "model.tar.gz"),
        code_tar=make_tar(code, tmp_path / "sourcedir.tar.gz"),
        program="serve.py",
        runtime=host_runtime(),
        workers=1,
    )
    assert invoke_endpoint("stale", "[[1, 2]]").body == b"[3.0]"
    pid = describe_endpoint("stale")["Local"]["pid"]
    state = json.loads((home / "endpoints" / "stale" / "state.json").read_text())
    workers = [*state["workers"], state["zygote"]]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10  # orphaned workers notice and stop within a second
    while any(alive(p) for p in [pid, *workers]) and time.monotonic() < deadline:
        time.sleep(0.05)
    described = describe_endpoint("stale")
    assert described["EndpointStatus"] == "Failed"
    assert "no longer running" in described["FailureReason"]
    with pytest.raises(EndpointError):
        invoke_endpoint("stale", "[[1, 2]]")
    result = invoke(["endpoints", "list"])
    assert result.exit_code == 0 and "Failed" in result.output


def test_delete_stops_orphaned_zygote_and_workers(home: Path, np_tar: Path) -> None:
    create_endpoint(
        "orphans",
        model_tar=np_tar,
        code_tar=None,
        program="inference.py",
        runtime=host_runtime(),
        workers=2,
    )
    pid = describe_endpoint("orphans")["Local"]["pid"]
    state = json.loads((home / "endpoints" / "orphans" / "state.json").read_text())
    orphans = [*state["workers"], state["zygote"]]
    try:
        for child in orphans:  # stopped: they cannot notice that their parent is gone
            os.kill(child, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        delete_endpoint("orphans")  # finds them by PID and by the worker's launch path
        assert not any(alive(p) for p in orphans)
    finally:
        for child in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_failing_model_fn_cleans_up(home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "inference.py").write_text(
        "def model_fn(model_dir):\n    raise OSError('no weights here')\n"
    )
    with pytest.raises(EndpointError, match="no weights here"):
        create_endpoint(
            "broken",
            model_tar=make_tar(broken, tmp_path / "model.tar.gz"),
            code_tar=None,
            program="inference.py",
            runtime=host_runtime(),
            workers=1,
        )
    assert list_endpoints() == [] and not (home / "endpoints" / "broken").exists()
    assert _processes_mentioning(str(home / "endpoints" / "broken")) == []


def _processes_mentioning(text: str, timeout: float = 5.0) -> list[int]:
    """PIDs whose command line contains ``text`` (a test's own temporary path)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    if text.encode() in cmdline and alive(int(entry.name)):
                        found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_unrunnable_interpreter_fails_and_cleans_up(home: Path, np_tar: Path) -> None:
    broken = Runtime(framework_version="host", python=Path("/bin/false"), python_version="0")
    with pytest.raises(EndpointError, match="exited with code 1"):
        create_endpoint(
            "no-python",
            model_tar=np_tar,
            code_tar=None,
            program="inference.py",
            runtime=broken,
            workers=1,
        )
    assert list_endpoints() == [] and not (home / "endpoints" / "no-python").exists()
    assert _processes_mentioning(str(home / "endpoints" / "no-python")) == []


@pytest.mark.parametrize("name", ["", "-x", "x-", "a_b", "a" * 64, "ä"])
def test_invalid_names(home: Path, np_tar: Path, name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid endpoint name"):
        create_endpoint(name, model_tar=np_tar, code_tar=None, program=None, runtime=host_runtime())


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("/etc/evil"),
        _member("../evil"),
        _member("a/../../evil"),
        _member("link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("d/link", tarfile.SYMTYPE, "../../outside"),
        _member("hard", tarfile.LNKTYPE, "../outside"),
        _member("dev", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=[
        "absolute",
        "dotdot",
        "nested-dotdot",
        "symlink-abs",
        "symlink-up",
        "hardlink",
        "device",
        "fifo",
    ],
)
def test_unsafe_tar_rejected(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar_with(tmp_path, member)
    with pytest.raises(EndpointError, match="refusing"):
        extract_safely(archive, tmp_path / "out", error=EndpointError)
    assert not (tmp_path / "out").exists()


def test_unsafe_model_tar_leaves_nothing(home: Path, tmp_path: Path) -> None:
    archive = _tar_with(tmp_path, _member("../escape"))
    with pytest.raises(EndpointError, match="refusing"):
        create_endpoint(
            "evil", model_tar=archive, code_tar=None, program=None, runtime=host_runtime()
        )
    assert list_endpoints() == []


def test_cli(home: Path, np_tar: Path) -> None:
    create_endpoint(
        "cli-ep",
        model_tar=np_tar,
        code_tar=None,
        program="inference.py",
        runtime=host_runtime(),
        workers=1,
    )
    listed = invoke(["endpoints", "list"])
    assert listed.exit_code == 0 and "cli-ep" in listed.output and "InService" in listed.output
    described = invoke(["endpoints", "describe", "cli-ep"])
    assert described.exit_code == 0 and "EndpointStatus" in described.output
    logs = invoke(["endpoints", "logs", "cli-ep"])
    assert logs.exit_code == 0 and "ready" in logs.output
    missing = invoke(["endpoints", "describe", "nope"])
    assert missing.exit_code == 1 and "no endpoint named 'nope'" in missing.output
    assert "Traceback" not in missing.output
    # names in messages are printed as they are, never read as rich markup
    odd = invoke(["endpoints", "describe", "x[/]y[bold]z"])
    assert odd.exit_code == 1 and "no endpoint named 'x[/]y[bold]z'" in odd.output
    both = invoke(["endpoints", "delete"])
    assert both.exit_code == 1
    deleted = invoke(["endpoints", "delete", "--all"])
    assert deleted.exit_code == 0 and "deleted endpoint cli-ep" in deleted.output
    assert list_endpoints() == []
