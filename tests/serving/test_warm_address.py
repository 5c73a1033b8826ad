"""The warm parent's address is decided where the config is written, not in the supervisor.

A supervisor lives as long as its endpoint; what it imports it keeps.  These tests check
that a deployed endpoint's supervisor maps neither OpenSSL's hashing nor SQLite, that a
supervisor imports neither ``dataclasses`` nor ``argparse`` (and one that joins a running warm parent not
fedsage's home helpers either), that a config without an address still gets its warm
parent, and that the listing of warm parents reads their ``parent.json`` files safely.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fedsage._process import alive, stop_process
from fedsage.runtimes.base import host_runtime
from fedsage.serving import create_endpoint, delete_endpoint, list_endpoints
from fedsage.serving.supervisor import ServerConfig
from fedsage.serving.warm import list_warm_parents, warm_key, with_address

from .conftest import make_tar, wait_until
from .test_warm import _parent, _zygote

SCRIPT = """
def model_fn(model_dir):
    return "model"

def transform_fn(model, body, content_type, accept):
    return "ok", "text/plain"
"""


@pytest.fixture
def home(clean_environ: Path) -> Iterator[Path]:
    # The run's short home (see tests/serving/test_warm.py: socket paths hold 108 bytes).
    yield clean_environ
    for endpoint in list_endpoints():
        delete_endpoint(endpoint["EndpointName"])


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "serve.py").write_text(SCRIPT)
    return folder


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_deployed_endpoints_supervisor_loads_no_hashing_and_no_sqlite(
    home: Path, model_dir: Path, tmp_path: Path
) -> None:
    described = create_endpoint(
        "lean", model_tar=make_tar(model_dir, tmp_path / "model.tar.gz"), code_tar=None,
        program="serve.py", runtime=host_runtime(), workers=1,
    )
    config = json.loads((Path(described["Local"]["dir"]) / "config.json").read_text())
    address = config["warm_address"]
    assert address["key"] == warm_key(config["python"], _zygote_env(config))
    assert Path(address["socket"]).is_socket()
    (parent,) = list_warm_parents()
    assert parent["Name"] == address["key"] and alive(parent["Pid"])
    maps = _mapped(described["Local"]["pid"])
    assert "python" in maps  # the right process, and readable
    assert "_hashlib" not in maps and "libcrypto" not in maps
    assert "_sqlite3" not in maps and "libsqlite3" not in maps


def _zygote_env(config: dict) -> dict[str, str]:
    from fedsage.serving.supervisor import worker_count, worker_env

    server = ServerConfig.from_json(json.dumps(config))
    return worker_env(server, worker_count(server))


# What ServerConfig as a dataclass (about 1 MiB) and argparse's help formatter (shutil,
# bz2, lzma, gettext: about 0.4 MiB) brought into every supervisor, for its whole life.
_HEAVY = {"dataclasses", "inspect", "ast", "dis", "argparse", "gettext"}
# What starting a warm parent needs (fedsage._home: tempfile, which imports shutil).
_HOME = {"fedsage._home", "fedsage._process", "tempfile", "shutil"}


@contextlib.contextmanager
def _supervisor(folder: Path, **settings: Any) -> Iterator[Callable[[], set[str]]]:
    """A real supervisor under ``-X importtime``, in service; yields: the modules it imported.

    ``-X importtime`` is a flag of this interpreter only (not of the zygote or workers it
    starts), so every ``import time:`` line in the log is the supervisor's, lazy imports
    included.
    """
    folder.mkdir()
    state = folder / "state.json"
    config = ServerConfig(state_file=str(state), **settings)
    (folder / "config.json").write_text(with_address(config).to_json())
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "fedsage.serving.supervisor",
             "--config", str(folder / "config.json")], stdout=out, stderr=subprocess.STDOUT,
        )

    def imported() -> set[str]:
        lines = log.read_text(errors="replace").splitlines()
        return {line.rsplit("|", 1)[1].strip() for line in lines
                if line.startswith("import time:") and "|" in line}

    try:
        wait_until(lambda: state.exists() and json.loads(state.read_text())["status"] == "InService",
                   60)
        yield imported
    finally:
        stop_process(proc.pid, None, grace=10.0)
        proc.wait(timeout=15)


def test_a_supervisor_imports_no_dataclasses_nor_argparse_and_one_joining_a_warm_parent_no_home(
    home: Path, model_dir: Path, tmp_path: Path
) -> None:
    settings = {"model_dir": str(model_dir), "code_dir": str(model_dir), "program": "serve.py",
                "workers": 1, "env": dict(host_runtime().env), "warm": True, "runtime": "host"}
    with _supervisor(tmp_path / "first", **settings) as first:
        (warm,) = list_warm_parents()  # the first supervisor started it
        with _supervisor(tmp_path / "joining", **settings) as joining:
            assert [p["Pid"] for p in list_warm_parents()] == [warm["Pid"]]
            joined = joining()
        started = first()
    # the log is read right: the warm module is imported only once the zygote is asked for
    assert "fedsage.serving.warm" in started & joined
    assert not started & _HEAVY, sorted(started & _HEAVY)
    assert not joined & (_HEAVY | _HOME), sorted(joined & (_HEAVY | _HOME))
    wait_until(lambda: not alive(warm["Pid"]), 15)  # it stops with its last supervisor


def test_a_temporary_server_uses_a_running_warm_parent_but_starts_none(
    home: Path, model_dir: Path, tmp_path: Path
) -> None:
    tar = make_tar(model_dir, tmp_path / "model.tar.gz")

    def deploy(name: str, **extra: bool) -> dict:
        return create_endpoint(name, model_tar=tar, code_tar=None, program="serve.py",
                               runtime=host_runtime(), workers=1, **extra)

    alone = deploy("alone", warm_start=False)
    assert list_warm_parents() == []
    assert _parent(_zygote(alone)) == alone["Local"]["pid"]  # a cold zygote of its own
    deploy("keeper")
    (warm,) = list_warm_parents()
    joined = deploy("joined", warm_start=False)
    assert _parent(_zygote(joined)) == warm["Pid"]
    assert [p["Pid"] for p in list_warm_parents()] == [warm["Pid"]]


def test_a_config_without_an_address_still_gets_its_warm_parent(
    home: Path, model_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    config = ServerConfig(
        model_dir=str(model_dir), code_dir=str(model_dir), program="serve.py", workers=1,
        env=dict(host_runtime().env), state_file=str(state), warm=True, runtime="host",
    )
    assert config.warm_address is None
    (tmp_path / "config.json").write_text(config.to_json())
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedsage.serving.supervisor", "--config",
             str(tmp_path / "config.json")], stdout=log, stderr=subprocess.STDOUT,
        )
    warm: list[dict] = []
    try:
        wait_until(lambda: state.exists() and "zygote" in state.read_text(), 60)
        warm = list_warm_parents()
        assert len(warm) == 1, (tmp_path / "server.log").read_text()
        # the supervisor worked out the address itself: the same one a writer would give
        assert with_address(config).warm_address["key"] == warm[0]["Name"]  # type: ignore[index]
        assert "_hashlib" in _mapped(proc.pid)  # the cost the address in the config avoids
    finally:
        stop_process(proc.pid, None, grace=10.0)
        proc.wait(timeout=15)
    # its warm parent stops with its last supervisor
    wait_until(lambda: not alive(warm[0]["Pid"]), 15)
    assert list_warm_parents() == []


def test_warm_parent_listing_skips_stopped_and_unreadable_records(home: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stopped = home / "warm" / ("a" * 16)
    stopped.mkdir(parents=True)
    record = {"Name": "a" * 16, "Runtime": "host", "Python": sys.executable, "Pid": dead.pid,
              "Process": {"pid": dead.pid, "start": "1"}, "CreationTime": 1.0, "Log": "x"}
    (stopped / "parent.json").write_text(json.dumps(record))
    broken = home / "warm" / ("b" * 16)
    broken.mkdir()
    (broken / "parent.json").write_text("{not json")
    assert list_warm_parents() == []
    # a record of a live process is listed, with only the public fields
    me = {**record, "Pid": os.getpid(), "Process": {"pid": os.getpid(), "start": None},
          "Socket": "/nowhere"}
    (broken / "parent.json").write_text(json.dumps(me))
    (listed,) = list_warm_parents()
    assert listed["Pid"] == os.getpid() and "Socket" not in listed and "Process" not in listed
    assert (stopped / "parent.json").exists()  # skipped, not removed


@pytest.mark.parametrize(
    "argv", [["--config", "c.json"], ["--config", ""], ["--config=c.json"], ["--conf", "c.json"]]
)
def test_the_supervisors_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    import argparse

    from fedsage.serving.supervisor import _config_arg

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    assert _config_arg(argv) == parser.parse_args(argv).config


@pytest.mark.parametrize("argv", [[], ["--config"], ["--config", "-x"], ["c.json"]])
def test_a_wrong_supervisor_command_line_gets_argparses_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from fedsage.serving.supervisor import _config_arg

    with pytest.raises(SystemExit) as exited:
        _config_arg(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
