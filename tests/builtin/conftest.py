"""Fixtures for the built-in XGBoost tests: real XGBoost runtimes, real /opt/ml trees.

The runtimes come from the run-wide runtime cache (``FEDSAGE_TEST_RUNTIME_CACHE``, as
every other test's); the first run builds them (about 20 to 40 s each).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from fedsage.builtin import xgboost as builtin_xgb
from fedsage.runtimes import Runtime, resolve_runtime
from fedsage.runtimes.build import RUNTIMES_DIR_ENV
from fedsage.serving.supervisor import ServerConfig
from fedsage.training import contract

SCRIPTS = Path(__file__).parent / "scripts"
METRIC_LINE = re.compile(r"^\[(\d+)\]((?:\t[a-z]+-[a-z0-9@_.-]+:-?[0-9.]+(?:e[-+]?\d+)?)+)$")


def _runtime(factory: pytest.TempPathFactory, version: str) -> Runtime:
    raw = os.environ.get("FEDSAGE_TEST_RUNTIME_CACHE")
    cache = Path(raw) if raw else factory.getbasetemp() / "runtimes"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("FEDSAGE_PYTHON_CANDIDATES", "FEDSAGE_RUNTIME_STRICT"):
            mp.delenv(name, raising=False)
        mp.setenv(RUNTIMES_DIR_ENV, str(cache))
        return resolve_runtime(version, framework="xgboost")


@pytest.fixture(scope="session")
def xgb171(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """The 1.7-1 image's runtime: Python 3.9, xgboost 1.7.4."""
    return _runtime(tmp_path_factory, "1.7-1")


@pytest.fixture(scope="session")
def xgb305(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """The 3.0-5 image's runtime: Python 3.10, xgboost 3.0.5."""
    return _runtime(tmp_path_factory, "3.0-5")


@pytest.fixture(params=["1.7-1", "3.0-5"])
def xgb_runtime(request: pytest.FixtureRequest) -> Runtime:
    """Each XGBoost runtime in turn."""
    return request.getfixturevalue("xgb171" if request.param == "1.7-1" else "xgb305")


# ----------------------------------------------------------------- data
def regression_data(rows: int = 240, seed: int = 0) -> np.ndarray:
    """``[label, x0..x3]`` rows; every number a multiple of 1/8, exact in any format."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-32, 33, size=(rows, 4)) / 8.0
    y = np.round((2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3]) * 8) / 8.0
    return np.column_stack([y, x])


def classification_data(rows: int = 300, seed: int = 1, noise: float = 0.15) -> np.ndarray:
    """``[label, x0..x4]`` rows with a noisy binary label (so that early stopping triggers)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-32, 33, size=(rows, 5)) / 8.0
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(float)
    flip = rng.random(rows) < noise
    y[flip] = 1 - y[flip]
    return np.column_stack([y, x])


def csv_bytes(data: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in data).encode()


def libsvm_bytes(data: np.ndarray, *, start: int = 0) -> bytes:
    """libsvm lines with every feature written (a zero left out would be *missing*)."""
    lines = []
    for row in data:
        feats = " ".join(f"{i + start}:{v!r}" for i, v in enumerate(row[1:].tolist()))
        lines.append(f"{int(row[0]) if row[0].is_integer() else row[0]!r} {feats}".rstrip())
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(data: np.ndarray) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({f"c{i}": data[:, i] for i in range(data.shape[1])})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        pq.write_table(table, path)
        return path.read_bytes()


def recordio_bytes(data: np.ndarray, *, sparse: bool = False, dtype: Any = np.float32) -> bytes:
    """SageMaker RecordIO-protobuf written by the SDK's own writer."""
    import io

    import scipy.sparse
    from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

    buf = io.BytesIO()
    features = data[:, 1:].astype(dtype)
    labels = data[:, 0].astype(np.float32)
    if sparse:
        write_spmatrix_to_sparse_tensor(buf, scipy.sparse.csr_matrix(features), labels)
    else:
        write_numpy_to_dense_tensor(buf, features, labels)
    return buf.getvalue()


# ----------------------------------------------------------------- jobs
@dataclass
class Job:
    """A laid-out /opt/ml tree and the result of running the trainer on it."""

    layout: contract.Layout
    env: dict[str, str]
    returncode: int = -1
    stdout: str = ""
    stderr: str = ""

    @property
    def root(self) -> Path:
        return Path(self.layout.root)

    @property
    def log(self) -> str:
        return self.stdout + self.stderr

    def failure(self) -> str:
        return Path(self.layout.failure_file).read_text()

    def metric_lines(self) -> list[dict[str, float]]:
        """The per-round lines of the log, as ``{"train-rmse": 0.3, ...}`` in order."""
        rounds = []
        for line in self.stdout.splitlines():
            match = METRIC_LINE.match(line)
            if match:
                assert int(match.group(1)) == len(rounds), line
                pairs = [item.split(":") for item in match.group(2).strip("\t").split("\t")]
                rounds.append({name: float(value) for name, value in pairs})
        return rounds

    def model_file(self, name: str = builtin_xgb.MODEL_FILE) -> Path:
        return Path(self.layout.model_dir) / name


def lay_out(
    root: Path,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, tuple[str | None, Mapping[str, bytes]]],
    *,
    data_config: dict[str, Any] | None = None,
) -> Job:
    """Lay out /opt/ml under ``root`` with ``fedsage.training.contract``.

    ``channels`` maps a channel to ``(content type or None, {relative path: bytes})``;
    ``data_config`` replaces the written ``inputdataconfig.json`` when given.
    """
    layout = contract.Layout(root)
    layout.create(sorted(channels))
    encoded = builtin_xgb.encode_hyperparameters(hyperparameters)
    types = {name: ct for name, (ct, _files) in channels.items()}
    contract.write_config_files(layout, encoded, types, "local")
    if data_config is not None:
        (Path(layout.config_dir) / "inputdataconfig.json").write_text(json.dumps(data_config))
    for name, (_ct, files) in channels.items():
        for rel, content in files.items():
            path = Path(layout.channel_dir(name)) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    env = contract.training_env(
        layout,
        hyperparameters=encoded,
        channels=types,
        instance_type="local",
        job_name="xgb-test",
        region="us-east-1",
    )
    return Job(layout, env)


def run_job(runtime: Runtime, job: Job, timeout: float = 240) -> Job:
    """Run the algorithm-mode trainer as the job's program (a real subprocess)."""
    env = {"PATH": os.environ["PATH"], **runtime.env, **job.env}
    out = subprocess.run(
        builtin_xgb.training_command(runtime),
        env=env,
        cwd=str(job.root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    job.returncode, job.stdout, job.stderr = out.returncode, out.stdout, out.stderr
    return job


def run_script(runtime: Runtime, script: str, *args: str, timeout: float = 240) -> Any:
    """Run one of ``scripts/`` in the runtime and return its JSON output."""
    out = subprocess.run(
        [str(runtime.python), str(SCRIPTS / script), *args],
        env={"PATH": os.environ["PATH"], **runtime.env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference(runtime: Runtime, tmp: Path, **spec: Any) -> dict[str, Any]:
    """xgboost's own ``train`` + ``predict`` in ``runtime`` (see ``scripts/reference.py``)."""
    for key in ("train", "validation", "predict"):
        if isinstance(spec.get(key), np.ndarray):
            spec[key] = spec[key].tolist()
    path = tmp / "reference.json"
    path.write_text(json.dumps(spec))
    return run_script(runtime, "reference.py", str(path))


def call_handlers(
    runtime: Runtime, tmp: Path, model_dir: Path, requests: list[dict[str, Any]]
) -> dict[str, Any]:
    """Call the inference handlers directly in ``runtime`` (see ``scripts/call_handlers.py``)."""
    encoded = [{**r, "body": base64.b64encode(r["body"]).decode("ascii")} for r in requests]
    path = tmp / "requests.json"
    path.write_text(json.dumps(encoded))
    result = run_script(
        runtime, "call_handlers.py", str(builtin_xgb.SERVING_DIR), str(model_dir), str(path)
    )
    for reply in result["replies"]:
        reply["body"] = base64.b64decode(reply["body"])
    return result


# ----------------------------------------------------------------- a real model server
@contextlib.contextmanager
def serving(
    tmp: Path, model_dir: Path, runtime: Runtime, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """fedsage's model server for an algorithm-mode model on 127.0.0.1; yields its URL.

    The worker loads the algorithm's handlers as the user module, as a local endpoint
    will (``fedsage.builtin.xgboost.serving_env``).  Every process it started is stopped
    by PID afterwards.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        model_dir=str(model_dir),
        python=str(runtime.python),
        code_dir=str(builtin_xgb.SERVING_DIR),
        program=builtin_xgb.SERVING_PROGRAM,
        workers=1,
        env={**runtime.env, **builtin_xgb.serving_env(env)},
        state_file=str(tmp / "state.json"),
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
    state_file = tmp / "state.json"
    try:
        url = _wait_healthy(proc, state_file, log)
        yield url
    finally:
        workers: list[int] = []
        with contextlib.suppress(OSError, ValueError, KeyError):
            state = json.loads(state_file.read_text())
            workers = [*state["workers"], *([state["zygote"]] if state.get("zygote") else [])]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_healthy(proc: subprocess.Popen[bytes], state_file: Path, log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if state["status"] == "InService":
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(state["url"] + "/ping", timeout=5).status_code == 200:
                        return str(state["url"])
        time.sleep(0.05)
    raise AssertionError(f"server not healthy in time:\n{log.read_text()}")
