"""Fixtures for the model-server tests: tiny models, real servers on 127.0.0.1, Python 3.7."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fedsage.serving.supervisor import ServerConfig

PY37 = Path.home() / ".pyenv" / "versions" / "3.7.16" / "bin" / "python"

INFERENCE = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

CUSTOM = """
import json, os, time
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    if content_type != "application/vnd.pipe":
        raise ValueError("only application/vnd.pipe")
    return np.array([[float(v) for v in body.decode().split("|")]])

def predict_fn(data, model):
    if data[0, 0] == 999:
        raise RuntimeError("the model blew up")
    if data[0, 0] == 777:
        time.sleep(30)
    if data[0, 0] == 555:
        time.sleep(0.6)
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps({"proba": prediction.tolist()}), "application/vnd.result+json"

def execution_parameters_fn():
    return {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
"""

TRANSFORM = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def transform_fn(model, body, content_type, accept):
    rows = [[float(v) for v in line.split(",")] for line in body.splitlines() if line]
    return ";".join(str(int(p)) for p in model.predict(rows)), "text/x-classes"
"""

NUMPY_ONLY = """
import numpy as np

class SumModel(object):
    def predict(self, X):
        return np.asarray(X).sum(axis=1)

def model_fn(model_dir):
    return SumModel()
"""


def _train(model_dir: Path) -> None:
    rng = np.random.RandomState(0)
    X = rng.rand(200, 4)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    joblib.dump(LogisticRegression().fit(X, y), model_dir / "model.joblib")


def make_tar(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for item in sorted(source.iterdir()):
            tar.add(item, arcname=item.name)
    return target


@pytest.fixture(scope="session")
def sk_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LogisticRegression on 4 features with entry points inference/custom/transform.py."""
    root = tmp_path_factory.mktemp("skmodel")
    _train(root)
    (root / "inference.py").write_text(INFERENCE)
    (root / "custom.py").write_text(CUSTOM)
    (root / "transform.py").write_text(TRANSFORM)
    return root


@pytest.fixture(scope="session")
def np_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numpy-only model (fast to start; runs under Python 3.7 with numpy alone)."""
    root = tmp_path_factory.mktemp("npmodel")
    (root / "inference.py").write_text(NUMPY_ONLY)
    return root


@pytest.fixture(scope="session")
def sk_model(sk_model_dir: Path) -> Any:
    return joblib.load(sk_model_dir / "model.joblib")


@dataclass
class Server:
    """A supervisor process started by a test, with its URL and log."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    state_file: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    tmp: Path,
    model_dir: Path,
    *,
    program: str | None = "inference.py",
    python: str = sys.executable,
    workers: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    max_body: int = 6 * 1024 * 1024,
    preload: bool = True,
) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        model_dir=str(model_dir),
        python=python,
        code_dir=str(model_dir),
        program=program,
        workers=workers,
        timeout=timeout,
        max_body=max_body,
        env=env or {},
        state_file=str(tmp / "state.json"),
        preload=preload,
    )
    (tmp / "config.json").write_text(config.to_json())
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedsage.serving.supervisor",
                "--config",
                str(tmp / "config.json"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        if (tmp / "state.json").exists():
            state = json.loads((tmp / "state.json").read_text())
            if state["status"] != "InService":  # until every worker runs
                time.sleep(0.05)
                continue
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(state["url"] + "/ping", timeout=5).status_code == 200:
                    return Server(proc, state["url"], state["port"], tmp / "state.json", log)
        time.sleep(0.05)
    stop_server_proc(proc, tmp / "state.json")
    raise AssertionError(f"server not healthy in time:\n{log.read_text()}")


def stop_server_proc(proc: subprocess.Popen[bytes], state_file: Path) -> None:
    workers = []
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file.read_text())
        workers = [*state["workers"], *([state["zygote"]] if state.get("zygote") else [])]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in workers:  # only the PIDs this test's supervisor (and its zygote) started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll ``predicate`` every 50 ms until it is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@contextlib.contextmanager
def running(tmp: Path, model_dir: Path, **kwargs: Any) -> Iterator[Server]:
    server = start_server(tmp, model_dir, **kwargs)
    try:
        yield server
    finally:
        stop_server_proc(server.proc, server.state_file)


@pytest.fixture(scope="session")
def default_server(
    tmp_path_factory: pytest.TempPathFactory, sk_model_dir: Path
) -> Iterator[Server]:
    """Default handlers; default accept text/csv."""
    env = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}
    with running(tmp_path_factory.mktemp("srv-default"), sk_model_dir, env=env) as server:
        yield server


@pytest.fixture(scope="session")
def custom_server(tmp_path_factory: pytest.TempPathFactory, sk_model_dir: Path) -> Iterator[Server]:
    """input/predict/output_fn; timeout 1 s; body limit 1000 bytes."""
    tmp = tmp_path_factory.mktemp("srv-custom")
    with running(tmp, sk_model_dir, program="custom.py", timeout=1.0, max_body=1000) as server:
        yield server


@pytest.fixture(scope="session")
def py37(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python 3.7 virtualenv with numpy, built with uv (pyenv's 3.7.16, PyPI)."""
    assert PY37.exists(), f"Python 3.7 is needed for the worker tests: {PY37}"
    venv = tmp_path_factory.mktemp("py37") / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "-p", str(PY37), str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(python), "numpy"], check=True)
    return python


def npy(array: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.asarray(array))
    return stream.getvalue()
