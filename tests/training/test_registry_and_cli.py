"""The jobs registry under concurrent writers, and the ``fedsage jobs`` commands."""

from __future__ import annotations

import multiprocessing
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from _cli import invoke

from fedsage import DwcSagemaker
from fedsage._home import Registry


def _bump(path: str, worker: int, rounds: int) -> None:
    registry = Registry(Path(path))
    for i in range(rounds):
        registry.update("counter", "c", **{f"w{worker}-{i}": True})


def test_two_processes_never_lose_an_update(tmp_path):
    path = tmp_path / "registry.sqlite3"
    registry = Registry(path)
    registry.add("counter", "c", {})
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_bump, args=(str(path), w, 40)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert len(registry.get("counter", "c") or {}) == 80
    with pytest.raises(KeyError, match="already exists"):
        registry.add("counter", "c", {})
    assert registry.delete("counter", "c") is True
    assert registry.get("counter", "c") is None


def test_jobs_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("print('line one')\nprint('line two')\n"))
    frame = pd.DataFrame({"a": [1, 2]})
    handle = DwcSagemaker().train_sklearn_model(
        frame, train_script=str(script), framework_version="host", wait=True, logs="None"
    )
    listed = invoke(["jobs", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert handle.job_name in listed.output and "Completed" in listed.output
    described = invoke(["jobs", "describe", handle.job_name])
    assert described.exit_code == 0
    assert '"TrainingJobStatus": "Completed"' in described.output
    logs = invoke(["jobs", "logs", handle.job_name])
    assert "line one" in logs.output and "line two" in logs.output
    missing = invoke(["jobs", "describe", "no-such-job"])
    assert missing.exit_code == 1
    assert "no local training job named 'no-such-job'" in missing.output
    stopped = invoke(["jobs", "stop", handle.job_name])
    assert stopped.exit_code == 0 and "Completed" in stopped.output
