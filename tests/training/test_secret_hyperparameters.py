"""Hyperparameters named like secrets reach the script but are never shown: not in the
job log, not in the FailureReason, not in ``fedsage jobs describe``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from _cli import invoke

from fedsage import DwcSagemaker
from fedsage.errors import TrainingError

SCRIPT = textwrap.dedent(
    """
    import argparse, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-password")
    parser.add_argument("--api_token")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    print("script got", len(args.db_password), len(args.api_token), args.count)
    assert args.db_password == "hunter2-secret" and args.api_token == "tok-123456"
    sys.exit(3)
    """
)


def test_secret_hyperparameters_are_masked_where_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    dwc = DwcSagemaker(prefix="secrets")
    with pytest.raises(TrainingError) as failed:
        dwc.train_sklearn_model(
            pd.DataFrame({"a": [1]}),
            train_script=str(script),
            hyperparameters={"db-password": "hunter2-secret", "api_token": "tok-123456", "count": 3},
            framework_version="host",
            wait=True,
            logs="None",
        )
    job = failed.value.job_name
    log = "\n".join(dwc._backend.training_log(job))
    assert "script got 14 10 3" in log  # the script had the real values
    assert "--db-password ****" in log and "--api_token ****" in log and "--count 3" in log
    described = invoke(["jobs", "describe", job])
    assert described.exit_code == 0, described.output
    shown = log + failed.value.reason + str(failed.value) + described.output
    assert "hunter2-secret" not in shown and "tok-123456" not in shown
    assert '"db-password": "****"' in described.output
