"""The first job on a framework version: the call returns at once and the job builds its
runtime in its own process, reporting progress."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.runtimes import cached_runtime

SCRIPT = """
import os, sys
if __name__ == "__main__":
    print("python %d.%d" % sys.version_info[:2])
    open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
"""


def test_wait_false_returns_while_the_job_builds_its_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEDSAGE_RUNTIMES_DIR", str(tmp_path / "empty-runtime-cache"))
    assert cached_runtime("0.23-1") is None
    (tmp_path / "train.py").write_text(SCRIPT)
    dwc = DwcSagemaker(prefix="first")
    handle = dwc.train_sklearn_model(pd.DataFrame({"a": [1]}), train_script="train.py")
    # The call returned before any runtime existed: the job's runner builds it.
    described = handle.describe()
    assert described["TrainingJobStatus"] == "InProgress"
    assert described["SecondaryStatus"] == "Starting"
    assert described["Fedsage"]["Runtime"] == {}  # the job's runner builds it
    assert "Preparing the framework runtime 0.23-1" in described["Fedsage"]["Progress"]["message"]
    final = handle.wait(logs="None")
    assert final["TrainingJobStatus"] == "Completed", final.get("FailureReason")
    assert final["Fedsage"]["Runtime"]["python_version"].startswith("3.7.")
    assert final["Fedsage"]["Progress"] is None
    assert cached_runtime("0.23-1") is not None
    log = "\n".join(dwc._backend.training_log(handle.job_name))
    assert "Preparing the framework runtime 0.23-1 (first use: building it)" in log
    assert "python 3.7" in log
    # Without a terminal, the wait showed one line per build step on stderr.
    shown = capfd.readouterr().err
    assert f"{handle.job_name}: runtime 0.23-1: " in shown
    assert shown.rstrip().endswith("ready")
