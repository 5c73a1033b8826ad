"""Warm parents: one pre-imported process per runtime forks the endpoints' zygotes."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cli import invoke

from fedsage._process import alive, process_start
from fedsage.runtimes.base import host_runtime
from fedsage.serving import create_endpoint, delete_endpoint, list_endpoints
from fedsage.serving._worker.fedsage_worker import warm as warm_worker
from fedsage.serving._worker.fedsage_worker.framing import send_json
from fedsage.serving.warm import import_env, list_warm_parents, warm_key

from .conftest import make_tar, wait_until

# model_fn notes what a fresh interpreter would have seen; transform_fn answers with it.
SCRIPT = """
import json, os, sys
import numpy as np
import email.mime.text  # a library module the warm parent learns

SEEN = {}

def model_fn(model_dir):
    SEEN.update(
        accept=os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
        program=os.environ.get("SAGEMAKER_PROGRAM"),
        cwd=os.getcwd(),
        model_dir=model_dir,
        draw=int(np.random.randint(1 << 30)),
        pid=os.getpid(),
        ppid=os.getppid(),
        argv=sys.argv[1:],
    )
    return "model"

def transform_fn(model, body, content_type, accept):
    return json.dumps(SEEN), "application/json"
"""


@pytest.fixture
def home(clean_environ: Path) -> Iterator[Path]:
    # The run's short home, not tmp_path: under pytest-xdist a test's tmp_path makes the
    # warm parent's socket path longer than a unix socket address holds (108 bytes), and
    # fedsage then starts zygotes without a warm parent (what these tests look for).
    yield clean_environ
    for endpoint in list_endpoints():  # never leave a server behind
        delete_endpoint(endpoint["EndpointName"])


@pytest.fixture
def model_tar(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "serve.py").write_text(SCRIPT)
    return make_tar(folder, tmp_path / "model.tar.gz")


def _deploy(name: str, tar: Path, env: dict[str, str] | None = None) -> dict:
    return create_endpoint(
        name,
        model_tar=tar,
        code_tar=None,
        program="serve.py",
        runtime=host_runtime(),
        workers=1,
        env=env,
    )


def _seen(described: dict) -> dict:
    answer = httpx.post(
        described["Local"]["url"] + "/invocations", content=b"x", headers={"Accept": "a/b"}
    )
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text)


def _zygote(described: dict) -> int:
    state = json.loads((Path(described["Local"]["dir"]) / "state.json").read_text())
    return int(state["zygote"])


def _parent(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def test_endpoints_of_a_runtime_share_its_warm_parent(home: Path, model_tar: Path) -> None:
    first = _deploy("warm-a", model_tar, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    second = _deploy("warm-b", model_tar)
    parents = list_warm_parents()
    assert len(parents) == 1, parents
    warm = parents[0]["Pid"]
    assert parents[0]["Runtime"] == "host"
    # both zygotes were forked by it, and each took its own endpoint's settings
    assert _parent(_zygote(first)) == warm and _parent(_zygote(second)) == warm
    seen_a, seen_b = _seen(first), _seen(second)
    assert (seen_a["accept"], seen_b["accept"]) == ("text/csv", None)
    assert seen_a["ppid"] == warm and seen_a["pid"] == _zygote(first)
    for seen, described in ((seen_a, first), (seen_b, second)):
        assert seen["cwd"] == str(Path(described["Local"]["dir"]) / "model")
        assert seen["model_dir"] == str(Path(described["Local"]["dir"]) / "model")
        assert seen["program"] == "serve.py"
        assert seen["argv"][:1] == ["--control"]
    assert seen_a["draw"] != seen_b["draw"]  # numpy reseeded, as in a fresh interpreter
    # the library module model_fn imported is remembered for the next warm parent
    learned = next((home / "warm").glob("modules-*.txt")).read_text().split()
    assert "email.mime.text" in learned and "serve" not in learned
    # it outlives the first endpoint and stops with the last one
    delete_endpoint("warm-a")
    assert alive(warm) and [p["Pid"] for p in list_warm_parents()] == [warm]
    assert _seen(second)["accept"] is None
    delete_endpoint("warm-b")
    wait_until(lambda: not alive(warm), timeout=10)
    assert list_warm_parents() == []
    assert not list((home / "warm").glob("*/warm.sock"))


def test_another_import_environment_gets_its_own_warm_parent(
    home: Path, model_tar: Path
) -> None:
    _deploy("warm-c", model_tar)
    _deploy("warm-d", model_tar, {"OMP_NUM_THREADS": "1"})
    assert len({p["Pid"] for p in list_warm_parents()}) == 2
    env = {"PATH": "/bin", "SAGEMAKER_PROGRAM": "a.py", "PWD": "/x"}
    assert import_env(env) == {"PATH": "/bin"}
    other = {**env, "SAGEMAKER_PROGRAM": "b.py", "PWD": "/y"}
    assert warm_key("python", env) == warm_key("python", other)
    assert warm_key("python", env) != warm_key("python", {**env, "OMP_NUM_THREADS": "1"})


def test_warm_parents_can_be_turned_off(
    home: Path, model_tar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDSAGE_WARM", "0")
    described = _deploy("warm-off", model_tar)
    assert list_warm_parents() == []
    assert _parent(_zygote(described)) == described["Local"]["pid"]  # the supervisor's child


def test_a_killed_warm_parent_leaves_its_endpoints_serving(home: Path, model_tar: Path) -> None:
    first = _deploy("warm-e", model_tar)
    warm = list_warm_parents()[0]["Pid"]
    start = process_start(warm)
    os.kill(warm, signal.SIGKILL)
    wait_until(lambda: not alive(warm, start))
    assert _seen(first)["program"] == "serve.py"
    assert list_warm_parents() == []
    second = _deploy("warm-f", model_tar)  # starts a new one
    parents = list_warm_parents()
    assert len(parents) == 1 and parents[0]["Pid"] != warm
    assert _parent(_zygote(second)) == parents[0]["Pid"]


def test_a_dead_zygote_is_forked_again_by_the_warm_parent(home: Path, model_tar: Path) -> None:
    described = _deploy("warm-g", model_tar)
    warm = list_warm_parents()[0]["Pid"]
    zygote = _zygote(described)
    os.kill(zygote, signal.SIGKILL)

    def replaced() -> bool:
        try:
            new = _zygote(described)
        except (OSError, ValueError, TypeError):
            return False
        return new != zygote and alive(new)

    wait_until(replaced)
    assert _parent(_zygote(described)) == warm
    wait_until(lambda: json.loads(
        (Path(described["Local"]["dir"]) / "state.json").read_text())["status"] == "InService")
    wait_until(lambda: _seen_or_none(described) is not None)


def _seen_or_none(described: dict) -> dict | None:
    try:
        return _seen(described)
    except (httpx.TransportError, AssertionError):
        return None


def test_endpoints_list_shows_the_warm_parent(home: Path, model_tar: Path) -> None:
    _deploy("warm-h", model_tar)
    warm = list_warm_parents()[0]["Pid"]
    result = invoke(["endpoints", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warm-h" in result.output
    assert f"warm parent of runtime host: pid {warm}" in result.output


def _forget(name: str) -> None:
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]


def test_the_import_recorder_reports_the_library_modules_imported_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "users_code.py").write_text("import tabnanny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget("tabnanny")
    _forget("users_code")
    recorder = warm_worker.ImportRecorder().install()
    try:
        assert sys.meta_path[0] is recorder
        importlib.import_module("users_code")
        assert importlib.util.find_spec("no_such_module_here") is None
    finally:
        recorder.remove()
    assert recorder not in sys.meta_path
    # what was looked for, imported or not; only the library modules imported are reported
    assert {"users_code", "tabnanny", "no_such_module_here"} <= set(recorder.names)
    assert warm_worker.library_modules(recorder.names) == ["tabnanny"]
    _forget("users_code")


def test_learned_modules_are_imported_right_before_the_next_zygote(tmp_path: Path) -> None:
    modules = tmp_path / "modules.txt"
    parent = warm_worker.WarmParent(str(tmp_path / "warm.sock"), str(modules))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent.reports[1] = ours
    _forget("tabnanny")
    send_json(theirs, {"modules": ["tabnanny", "json"]})
    theirs.close()
    try:
        parent._report(ours)
        # remembered for the next warm parent, not imported while the first endpoint runs
        assert modules.read_text().split() == ["tabnanny"]
        assert "tabnanny" not in sys.modules and parent.pending == ["tabnanny"]
        parent._import_pending()
        assert "tabnanny" in sys.modules and parent.pending == []
    finally:
        gc.unfreeze()  # _import_pending froze this test process's heap


@pytest.fixture
def long_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A FEDSAGE_HOME too long for a socket address, and a short temp dir of its own."""
    short_tmp = Path(tempfile.mkdtemp(prefix="fs", dir="/tmp"))
    # The supervisor (a process of its own) picks the socket path: TMPDIR reaches it.
    monkeypatch.setenv("TMPDIR", str(short_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    home = tmp_path / ("long-home-" * 10)
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    assert len(str(home / "warm" / ("k" * 16) / "warm.sock")) > 108
    try:
        yield home, short_tmp
    finally:
        for endpoint in list_endpoints():
            delete_endpoint(endpoint["EndpointName"])
        shutil.rmtree(short_tmp, ignore_errors=True)


def test_a_long_home_gets_its_warm_parent_through_a_short_socket(
    long_home: tuple[Path, Path], model_tar: Path
) -> None:
    _, short_tmp = long_home
    first = _deploy("long-a", model_tar)
    second = _deploy("long-b", model_tar)
    (parent,) = list_warm_parents()
    assert _parent(_zygote(first)) == parent["Pid"] == _parent(_zygote(second))
    private = short_tmp / f"fedsage-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700
    sockets = [p for p in private.iterdir() if stat.S_ISSOCK(p.stat().st_mode)]
    assert len(sockets) == 1 and sockets[0].name.endswith(f"-{parent['Name']}.sock")
    delete_endpoint("long-a")
    delete_endpoint("long-b")
    wait_until(lambda: not alive(parent["Pid"]))


def test_a_shared_short_socket_folder_is_refused(
    long_home: tuple[Path, Path], model_tar: Path
) -> None:
    _, short_tmp = long_home
    private = short_tmp / f"fedsage-{os.getuid()}"
    private.mkdir()
    private.chmod(0o777)  # anyone could put a socket there: never used
    described = _deploy("long-c", model_tar)
    assert list_warm_parents() == []
    assert "is not a private folder" in Path(described["Local"]["log"]).read_text()
    assert _parent(_zygote(described)) == described["Local"]["pid"]  # the supervisor's child
    assert _seen(described)["program"] == "serve.py"  # and it serves
    assert list(private.iterdir()) == []
