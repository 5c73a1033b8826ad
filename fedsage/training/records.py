"""Local job records: DescribeTrainingJob-shaped entries in the registry, and job folders."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._home import Registry, fedsage_home
from .._process import alive
from .spec import JobSpec

__all__ = [
    "KIND",
    "TERMINAL",
    "describe_record",
    "job_dir",
    "new_record",
    "pid_alive",
    "refresh_stale",
    "set_secondary",
    "tail_log",
]

KIND = "job"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
_TIME_FIELDS = (
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "LastModifiedTime",
)


def job_dir(job_name: str) -> Path:
    """The folder of a local job: ``spec.json``, ``log.txt`` and the ``opt/ml`` tree."""
    return fedsage_home() / "jobs" / job_name


def training_image(framework_version: str) -> str:
    """The image name SageMaker would use (local mode records it for reference)."""
    return f"sagemaker-scikit-learn:{framework_version}-cpu-py3"


def new_record(spec: JobSpec) -> dict[str, Any]:
    """The first registry record of a job that is about to start."""
    now = time.time()
    return {
        "TrainingJobName": spec.job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:{spec.region}:000000000000:training-job/"
        f"{spec.job_name.lower()}",
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [
            {
                "Status": "Starting",
                "StartTime": now,
                "StatusMessage": "Preparing the instances for training",
            }
        ],
        "HyperParameters": spec.hyperparameters,
        "AlgorithmSpecification": {
            "TrainingImage": training_image(spec.framework_version),
            "TrainingInputMode": "File",
            "EnableSageMakerMetricsTimeSeries": False,
        },
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": channel["uri"],
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                **({"ContentType": channel["content_type"]} if channel["content_type"] else {}),
                "CompressionType": "None",
                "RecordWrapperType": "None",
            }
            for name, channel in sorted(spec.channels.items())
        ],
        "OutputDataConfig": {"S3OutputPath": spec.output_path},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": now,
        "LastModifiedTime": now,
        "Fedsage": {
            "Mode": spec.mode,
            "JobDir": str(job_dir(spec.job_name)),
            "Runtime": spec.runtime,
            "BaseJobName": spec.base_job_name,
            "Program": spec.program,
            "SubmitDirectory": spec.submit_directory,
            "Pid": None,
            "Warnings": [],
        },
    }


def set_secondary(registry: Registry, job_name: str, status: str, message: str) -> None:
    """Move a job to a new SecondaryStatus, closing the previous transition."""
    record = registry.get(KIND, job_name) or {}
    now = time.time()
    transitions = record.get("SecondaryStatusTransitions", [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
    changes: dict[str, Any] = {
        "SecondaryStatus": status,
        "SecondaryStatusTransitions": transitions,
        "LastModifiedTime": now,
    }
    if status == "Training":
        changes["TrainingStartTime"] = now
    registry.update(KIND, job_name, **changes)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie)."""
    return pid is not None and pid > 0 and alive(pid)


def refresh_stale(registry: Registry, record: dict[str, Any]) -> dict[str, Any]:
    """Mark a job whose runner died without finishing as Failed; return the record."""
    if record.get("TrainingJobStatus") in TERMINAL:
        return record
    pid = record.get("Fedsage", {}).get("Pid")
    if pid is None or pid_alive(pid):
        return record
    # The runner may have finished between our two reads.
    fresh = registry.get(KIND, record["TrainingJobName"]) or record
    if fresh.get("TrainingJobStatus") in TERMINAL:
        return fresh
    return registry.update(
        KIND,
        record["TrainingJobName"],
        TrainingJobStatus="Failed",
        SecondaryStatus="Failed",
        FailureReason=f"InternalServerError: the local job runner (pid {pid}) ended without "
        "recording a result; see the job's log",
        TrainingEndTime=time.time(),
        LastModifiedTime=time.time(),
    )


def describe_record(record: dict[str, Any]) -> dict[str, Any]:
    """A DescribeTrainingJob-shaped copy of ``record``: times become aware datetimes."""
    out = dict(record)
    for key in _TIME_FIELDS:
        if isinstance(out.get(key), (int, float)):
            out[key] = datetime.fromtimestamp(out[key], timezone.utc)
    out["SecondaryStatusTransitions"] = [
        {
            k: datetime.fromtimestamp(v, timezone.utc) if k.endswith("Time") else v
            for k, v in t.items()
        }
        for t in record.get("SecondaryStatusTransitions", [])
    ]
    return out


def stop_runner(pid: int) -> None:
    """Ask a runner to stop: it kills the script's process group and records Stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def tail_log(path: Path, start: int = 0) -> tuple[list[str], int]:
    """Return complete new lines of ``path`` from byte ``start``, and the next offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return [], start
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", "replace").splitlines()
    return lines, start + end


def iter_log(path: Path) -> Iterator[str]:
    """Every line of a job log written so far."""
    lines, _ = tail_log(path)
    yield from lines
