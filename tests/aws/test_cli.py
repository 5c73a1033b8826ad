"""``fedsage jobs --mode aws`` against moto."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from _cli import invoke

from fedsage import DwcSagemaker

from .test_training import train


def test_jobs_cli_in_aws_mode(sm: Any, train_script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    handle = train(DwcSagemaker(mode="aws"), train_script)
    listed = invoke(["jobs", "--mode", "aws", "list"])
    assert listed.exit_code == 0, listed.output
    assert handle.latest_training_job.name in listed.output
    described = invoke(["jobs", "--mode", "aws", "describe", handle.latest_training_job.name])
    assert described.exit_code == 0, described.output
    assert sm.describe_training_job(TrainingJobName=handle.latest_training_job.name)["TrainingJobArn"] in (
        described.output
    )
    # The local registry knows nothing of it.
    local = invoke(["jobs", "--mode", "local", "describe", handle.latest_training_job.name])
    assert local.exit_code == 1


def test_endpoints_cli_in_aws_mode(
    sm: Any, train_script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_endpoints_and_config import canned_answer, run_notebook

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("FEDSAGE_MODE", "aws")
    canned_answer(os.environ["AWS_ENDPOINT_URL"], "[1.0]")
    name, _ = run_notebook(DwcSagemaker(), train_script)
    listed = invoke(["endpoints", "list"])
    assert listed.exit_code == 0, listed.output
    assert name in listed.output and "InService" in listed.output
    described = invoke(["endpoints", "describe", name])
    assert described.exit_code == 0 and "EndpointArn" in described.output
    logs = invoke(["endpoints", "logs", name])
    assert logs.exit_code == 0 and logs.output == ""  # no log group yet
    cloudwatch = boto3.client("logs")
    group, stream = f"/aws/sagemaker/Endpoints/{name}", "AllTraffic/i-0123456789"
    cloudwatch.create_log_group(logGroupName=group)
    cloudwatch.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    cloudwatch.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": f"served {i}"} for i in range(2)],
    )
    logs = invoke(["endpoints", "logs", name])
    assert logs.exit_code == 0 and logs.output == "served 0\nserved 1\n", logs.output
    missing = invoke(["endpoints", "logs", "no-such-endpoint"])
    assert missing.exit_code == 1 and "no-such-endpoint" in missing.output
    deleted = invoke(["endpoints", "--mode", "aws", "delete", name])
    assert deleted.exit_code == 0, deleted.output
    assert sm.list_endpoints()["Endpoints"] == []
