"""The worker's handler half without sockets, under fedsage's Python and under Python 3.7."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fedsage.serving.supervisor import WORKER_PATH

from . import worker_checks
from .conftest import running

worker_checks.load()


@pytest.mark.parametrize("check", worker_checks.CHECKS, ids=lambda c: c.__name__)
def test_handlers(check: Callable[[], None]) -> None:
    check()


def test_host_runtime_parses_json_with_orjson() -> None:
    """fedsage's environment has orjson, so the JSON checks above ran its road too."""
    assert worker_checks.W.codecs._orjson is not None


def test_handlers_under_python37(py37: Path) -> None:
    checks = Path(worker_checks.__file__)
    done = subprocess.run(
        [str(py37), str(checks), str(WORKER_PATH)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"all {len(worker_checks.CHECKS)} checks passed under Python 3.7" in done.stdout


def test_handlers_under_the_default_runtime() -> None:
    """The checks (the decoders' comparisons with the image's) under 0.23-1's numpy 1.19."""
    from fedsage.runtimes import resolve_runtime

    runtime = resolve_runtime("0.23-1")
    checks = Path(worker_checks.__file__)
    done = subprocess.run(
        [str(runtime.python), "-W", "ignore", str(checks), str(WORKER_PATH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"all {len(worker_checks.CHECKS)} checks passed under Python 3.7" in done.stdout


def test_server_under_python37(py37: Path, tmp_path: Path, np_model_dir: Path) -> None:
    with running(tmp_path, np_model_dir, python=str(py37), workers=1) as server:
        answer = httpx.post(
            server.url + "/invocations",
            content=b"1,2\n3,4",
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        assert (answer.status_code, answer.text) == (200, "[3.0, 7.0]")
        assert httpx.get(server.url + "/nope").status_code == 404
