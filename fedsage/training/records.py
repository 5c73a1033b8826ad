"""Local job records: one typed record per job in the registry, and the job folders.

A :class:`JobRecord` holds what a local job's status is and was; :meth:`JobRecord.describe`
renders it in the shape of SageMaker's ``DescribeTrainingJob`` response, which is what
fedsage's API returns in both modes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._home import Records, home_dir
from .._process import ProcessIdentity
from ..errors import ConfigurationError
from .settings import EstimatorSettings
from .spec import JobSpec

__all__ = [
    "KIND",
    "TERMINAL_STATUSES",
    "JobRecord",
    "StatusTransition",
    "job_dir",
    "jobs",
    "refresh_stale",
    "tail_log",
]

KIND = "job"
#: TrainingJobStatus values after which nothing changes any more (both modes).
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
FAILURE_REASON_LIMIT = 1024  # SageMaker keeps the first 1,024 characters


def job_dir(job_name: str) -> Path:
    """The folder of a local job: ``spec.json``, ``log.txt`` and the ``opt/ml`` tree."""
    return home_dir("jobs") / job_name


def training_image(framework_version: str, framework: str = "scikit-learn") -> str:
    """The image name SageMaker would use (local mode records it for reference)."""
    if framework == "xgboost":
        return f"sagemaker-xgboost:{framework_version}"
    return f"sagemaker-scikit-learn:{framework_version}-cpu-py3"


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


@dataclass
class StatusTransition:
    """One entry of ``SecondaryStatusTransitions``."""

    status: str
    start_time: float
    message: str
    end_time: float | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "StartTime": _utc(self.start_time),
            "StatusMessage": self.message,
        }
        if self.end_time is not None:
            out["EndTime"] = _utc(self.end_time)
        return out


@dataclass
class JobRecord:
    """A local training job as the registry keeps it.

    The fields mirror ``DescribeTrainingJob``; times are POSIX seconds.  ``runner`` is the
    job runner process (PID and start time) while the job is in progress.
    """

    name: str
    region: str
    mode: str
    base_job_name: str
    framework_version: str
    program: str
    submit_directory: str
    output_path: str
    instance_type: str
    hyperparameters: dict[str, str]
    channels: dict[str, dict[str, str | None]]
    runtime: dict[str, Any]
    creation_time: float
    status: str = "InProgress"
    secondary_status: str = "Starting"
    transitions: list[StatusTransition] = field(default_factory=list)
    last_modified_time: float | None = None
    training_start_time: float | None = None
    training_end_time: float | None = None
    failure_reason: str | None = None
    model_artifacts: str | None = None
    runner: ProcessIdentity | None = None
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    framework: str = "scikit-learn"
    algorithm: str | None = None

    @classmethod
    def new(cls, spec: JobSpec, now: float) -> JobRecord:
        """The first record of a job that is about to start."""
        return cls(
            name=spec.job_name,
            region=spec.region,
            mode=spec.mode,
            base_job_name=spec.base_job_name,
            framework_version=spec.framework_version,
            program=spec.program,
            submit_directory=spec.submit_directory,
            output_path=spec.output_path,
            instance_type=spec.instance_type,
            hyperparameters=dict(spec.hyperparameters),
            channels={name: dict(channel) for name, channel in spec.channels.items()},
            runtime=dict(spec.runtime),
            settings=dict(spec.settings),
            framework=spec.framework,
            algorithm=spec.algorithm,
            creation_time=now,
            last_modified_time=now,
            transitions=[
                StatusTransition("Starting", now, "Preparing the instances for training")
            ],
        )

    # -- changes ---------------------------------------------------------------

    def set_progress(self, message: str | None, fraction: float | None) -> None:
        """What the job is preparing (a runtime build), for progress displays."""
        self.progress = None if message is None else {"message": message, "fraction": fraction}

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def move_to(self, secondary: str, message: str, now: float) -> None:
        """Enter a new SecondaryStatus, closing the previous transition."""
        if self.transitions and self.transitions[-1].end_time is None:
            self.transitions[-1].end_time = now
        self.transitions.append(StatusTransition(secondary, now, message))
        self.secondary_status = secondary
        self.last_modified_time = now
        if secondary == "Training":
            self.training_start_time = now

    def finish(
        self,
        status: str,
        secondary: str,
        message: str,
        now: float,
        *,
        reason: str | None = None,
        model_artifacts: str | None = None,
    ) -> None:
        """End the job: ``Completed``, ``Failed`` or ``Stopped``."""
        self.move_to(secondary, message, now)
        self.transitions[-1].end_time = now
        self.status = status
        self.training_end_time = now
        if reason:
            self.failure_reason = reason[:FAILURE_REASON_LIMIT]
        if model_artifacts:
            self.model_artifacts = model_artifacts

    # -- shapes ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runner"] = None if self.runner is None else self.runner.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        values = dict(data)
        values["transitions"] = [StatusTransition(**t) for t in values.get("transitions", [])]
        values["runner"] = ProcessIdentity.from_dict(values.get("runner"))
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """The record in the shape of SageMaker's ``DescribeTrainingJob`` response."""
        settings = EstimatorSettings.from_dict(self.settings)
        algorithm: dict[str, Any] = {
            "TrainingImage": training_image(self.framework_version, self.framework),
            "TrainingInputMode": "File",
            "EnableSageMakerMetricsTimeSeries": False,
        }
        if settings.metric_definitions:
            algorithm["MetricDefinitions"] = [dict(m) for m in settings.metric_definitions]
        resources: dict[str, Any] = {
            "InstanceType": self.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.volume_size,
        }
        if settings.volume_kms_key:
            resources["VolumeKmsKeyId"] = settings.volume_kms_key
        output: dict[str, Any] = {"S3OutputPath": self.output_path}
        if settings.output_kms_key:
            output["KmsKeyId"] = settings.output_kms_key
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": settings.max_run}
        if settings.max_wait is not None:
            stopping["MaxWaitTimeInSeconds"] = settings.max_wait
        out: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": f"arn:aws:sagemaker:{self.region}:000000000000:training-job/"
            f"{self.name.lower()}",
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "SecondaryStatusTransitions": [t.describe() for t in self.transitions],
            "HyperParameters": dict(self.hyperparameters),
            "AlgorithmSpecification": algorithm,
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
                for name, channel in sorted(self.channels.items())
            ],
            "OutputDataConfig": output,
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            **settings.describe(),
            "CreationTime": _utc(self.creation_time),
            "LastModifiedTime": _utc(self.last_modified_time or self.creation_time),
        }
        if self.training_start_time is not None:
            out["TrainingStartTime"] = _utc(self.training_start_time)
        if self.training_end_time is not None:
            out["TrainingEndTime"] = _utc(self.training_end_time)
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if self.model_artifacts:
            out["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifacts}
        if self.final_metrics:
            out["FinalMetricDataList"] = [
                {**m, "Timestamp": _utc(m["Timestamp"])} for m in self.final_metrics
            ]
        out["Fedsage"] = {
            "Mode": self.mode,
            "JobDir": str(job_dir(self.name)),
            "Runtime": self.runtime,
            "BaseJobName": self.base_job_name,
            "Program": self.program,
            "Framework": self.framework,
            "Algorithm": self.algorithm,
            "SubmitDirectory": self.submit_directory,
            "Pid": None if self.runner is None else self.runner.pid,
            "Warnings": list(self.warnings),
            "Tags": list(settings.tags),
            "Dependencies": list(settings.dependencies),
            "Progress": self.progress,
        }
        return out


def _no_such_job(name: str) -> Exception:
    return ConfigurationError(
        f"no local training job named {name!r}; list jobs with: fedsage jobs list"
    )


#: The local jobs in the registry.
jobs: Records[JobRecord] = Records(KIND, JobRecord.from_dict, _no_such_job)


def refresh_stale(record: JobRecord) -> JobRecord:
    """Mark a job whose runner died without finishing as Failed; return the record."""
    if record.ended or record.runner is None or record.runner.alive():
        return record
    runner = record.runner

    def fail(current: JobRecord) -> None:
        if current.ended:  # the runner finished between the two reads
            return
        current.finish(
            "Failed",
            "Failed",
            "Training job failed",
            time.time(),
            reason=f"InternalServerError: the local job runner (pid {runner.pid}) ended "
            "without recording a result; see the job's log",
        )

    return jobs.modify(record.name, fail)


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
