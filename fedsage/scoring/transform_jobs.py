"""Local Batch Transform jobs: their checked settings, their records and their Describe.

A job is recorded in fedsage's registry (kind ``transform-job``) the moment it is
created, so ``DescribeTransformJob`` answers during and after the run, from any process.
The record names the process that runs the job; a job whose process is gone before it
ended is reported ``Failed`` (never left ``InProgress`` for ever).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._home import Records, home_dir
from .._process import ProcessIdentity
from ..errors import ConfigurationError

__all__ = [
    "JobSettings",
    "TransformJobRecord",
    "check_job_settings",
    "describe",
    "job_log",
    "transform_jobs",
]

KIND = "transform-job"
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
ENDED = ("Completed", "Failed", "Stopped")
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,1023}")
_MAX_REASON = 1024


def check_name(name: Any, param: str) -> str:
    """Return ``name`` if it follows SageMaker's TransformJobName / ModelName rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"the {param} parameter {name!r} is not a valid SageMaker name: use 1 to 63 "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return name


def _choice(value: Any, param: str, choices: tuple[str, ...], caller: str) -> Any:
    if value is not None and value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ConfigurationError(
            f"the {param} parameter of {caller} must be one of {allowed} or None; got "
            f"{value!r} instead"
        )
    return value


def _int_between(value: Any, param: str, low: int, high: int, caller: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"the {param} parameter of {caller} must be an int from {low} to {high}; got "
            f"{value!r} instead"
        )
    return value


@dataclass(frozen=True)
class JobSettings:
    """What ``transformer(...)`` fixes for every job it starts (checked)."""

    model_name: str
    instance_count: int
    instance_type: str
    strategy: str | None = None
    assemble_with: str | None = None
    output_path: str | None = None
    output_kms_key: str | None = None
    accept: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    max_concurrent_transforms: int | None = None
    max_payload: int | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    volume_kms_key: str | None = None
    base_transform_job_name: str | None = None
    model_server_workers: int | None = None


def check_job_settings(caller: str = "transformer", **given: Any) -> JobSettings:
    """Check ``transformer``'s arguments as CreateTransformJob would; build :class:`JobSettings`.

    Parameters
    ----------
    caller : str
        The public call, for messages.
    **given
        The fields of :class:`JobSettings`.

    Returns
    -------
    JobSettings

    Raises
    ------
    ConfigurationError
        Naming the parameter, the rule and the fix.
    """
    check_name(given["model_name"], "model_name")
    _int_between(given["instance_count"], "instance_count", 1, 100, caller)
    if not isinstance(given["instance_type"], str) or not given["instance_type"]:
        raise ConfigurationError(
            f"the instance_type parameter of {caller} must be a str such as 'local' or "
            f"'ml.m5.xlarge'; got {given['instance_type']!r} instead"
        )
    _choice(given.get("strategy"), "strategy", ("MultiRecord", "SingleRecord"), caller)
    _choice(given.get("assemble_with"), "assemble_with", ("None", "Line"), caller)
    concurrent = _int_between(
        given.get("max_concurrent_transforms"), "max_concurrent_transforms", 0, 1000, caller
    )
    payload = _int_between(given.get("max_payload"), "max_payload", 0, 100, caller)
    _int_between(given.get("model_server_workers"), "model_server_workers", 1, 1024, caller)
    if concurrent and payload and concurrent * payload > 100:
        raise ConfigurationError(
            f"max_concurrent_transforms x max_payload must be at most 100 (MB); got "
            f"{concurrent} x {payload} = {concurrent * payload}: lower one of them"
        )
    output_path = given.get("output_path")
    if output_path is not None and (
        not isinstance(output_path, str) or not output_path.startswith(("s3://", "file://"))
    ):
        raise ConfigurationError(
            f"the output_path parameter of {caller} must be an s3:// or file:// URI; got "
            f"{output_path!r} instead"
        )
    for param in ("output_kms_key", "accept", "volume_kms_key", "base_transform_job_name"):
        value = given.get(param)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"the {param} parameter of {caller} must be a str or None; got {value!r}"
            )
    env = _check_env(given.get("env"), caller)
    tags = _check_tags(given.get("tags"), caller)
    values = {**given, "env": env, "tags": tags}
    return JobSettings(**values)


def _check_env(env: Any, caller: str) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise ConfigurationError(f"the env parameter of {caller} must be a dict; got {env!r}")
    if len(env) > 16:
        raise ConfigurationError(
            f"the env parameter of {caller} has {len(env)} entries; SageMaker allows 16"
        )
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
            raise ConfigurationError(
                f"the env parameter of {caller} has the key {key!r}; keys are letters, digits "
                "and '_', not starting with a digit"
            )
        if not isinstance(value, str) or len(value) > 10240:
            raise ConfigurationError(
                f"the env parameter of {caller}: the value of {key} must be a str of at most "
                f"10240 characters; got {type(value).__name__} instead"
                if not isinstance(value, str)
                else f"the env parameter of {caller}: the value of {key} is {len(value)} "
                "characters long; SageMaker allows 10240"
            )
    return dict(env)


def _check_tags(tags: Any, caller: str) -> list[dict[str, str]]:
    if tags is None:
        return []
    if isinstance(tags, dict):  # the SDK also takes {"Key": "Value"}
        tags = [{"Key": key, "Value": value} for key, value in tags.items()]
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and set(tag) == {"Key", "Value"} for tag in tags
    ):
        raise ConfigurationError(
            f"the tags parameter of {caller} must be a list of {{'Key': ..., 'Value': ...}}; "
            f"got {tags!r} instead"
        )
    if len(tags) > 50:
        raise ConfigurationError(f"the tags parameter of {caller} has {len(tags)}; at most 50")
    return [dict(tag) for tag in tags]


def check_model_client_config(config: Any) -> dict[str, int]:
    """ModelClientConfig with its defaults filled (600 s, 3 retries)."""
    if config is None:
        config = {}
    if not isinstance(config, dict) or not set(config) <= {
        "InvocationsTimeoutInSeconds",
        "InvocationsMaxRetries",
    }:
        raise ConfigurationError(
            "the model_client_config parameter of transform must be a dict with "
            "'InvocationsTimeoutInSeconds' and/or 'InvocationsMaxRetries'; got "
            f"{config!r} instead"
        )
    timeout = _int_between(
        config.get("InvocationsTimeoutInSeconds", 600),
        "model_client_config['InvocationsTimeoutInSeconds']", 1, 3600, "transform",
    )  # fmt: skip
    retries = _int_between(
        config.get("InvocationsMaxRetries", 3),
        "model_client_config['InvocationsMaxRetries']", 0, 3, "transform",
    )  # fmt: skip
    return {"InvocationsTimeoutInSeconds": timeout or 600, "InvocationsMaxRetries": retries or 0}


# -- records -----------------------------------------------------------------


@dataclass
class TransformJobRecord:
    """A local transform job as the registry keeps it.

    ``request`` is the CreateTransformJob request (what Describe echoes); ``resolved``
    the values the job ran with once the container's ``/execution-parameters`` was read.
    """

    name: str
    created: float
    request: dict[str, Any]
    arn: str
    status: str = "InProgress"
    failure_reason: str | None = None
    started: float | None = None
    ended: float | None = None
    owner: dict[str, Any] | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformJobRecord:
        return cls(**data)

    @property
    def has_ended(self) -> bool:
        return self.status in ENDED

    def finish(self, status: str, reason: str | None = None) -> None:
        """Record the end (``reason`` is cut to the service's 1024 characters)."""
        self.status = status
        self.ended = time.time()
        if reason:
            self.failure_reason = reason if len(reason) <= _MAX_REASON else reason[:1021] + "..."


def _no_such_job(name: str) -> Exception:
    return ConfigurationError(
        f"there is no local transform job named {name!r}; transform jobs are recorded in "
        "this FEDSAGE_HOME when Transformer.transform starts them"
    )


#: The local transform jobs in the registry.
transform_jobs: Records[TransformJobRecord] = Records(
    KIND, TransformJobRecord.from_dict, _no_such_job
)


def job_log(name: str) -> Path:
    """The job's log file (one line per input file and its result)."""
    return home_dir("transform-jobs", name) / "log.txt"


def refresh(record: TransformJobRecord) -> TransformJobRecord:
    """Mark a job whose process exited before it ended as ``Failed``; return the record."""
    owner = record.owner
    if record.has_ended or owner is None:
        return record
    if ProcessIdentity(owner["pid"], owner.get("start")).alive():
        return record

    def fail(current: TransformJobRecord) -> None:
        if not current.has_ended:
            current.finish(
                "Failed",
                f"InternalServerError: the Python process that ran the job (pid {owner['pid']}) "
                "exited before the job ended; run transform again",
            )

    return transform_jobs.modify(record.name, fail)


def _stamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def describe(record: TransformJobRecord) -> dict[str, Any]:
    """The DescribeTransformJob response for ``record`` (plus fedsage's ``Fedsage`` key).

    ``MaxConcurrentTransforms``, ``MaxPayloadInMB`` and ``BatchStrategy`` are the values the
    job ran with (the request's, else the container's, else the defaults) once known.
    """
    request = record.request
    answer: dict[str, Any] = {
        "TransformJobName": record.name,
        "TransformJobArn": record.arn,
        "TransformJobStatus": record.status,
    }
    if record.failure_reason:
        answer["FailureReason"] = record.failure_reason
    answer["ModelName"] = request["ModelName"]
    for key in ("MaxConcurrentTransforms", "ModelClientConfig", "MaxPayloadInMB", "BatchStrategy"):
        value = record.resolved.get(key, request.get(key))
        if value is not None:
            answer[key] = value
    answer["Environment"] = dict(request.get("Environment") or {})  # the job's own env
    answer["TransformInput"] = request["TransformInput"]
    answer["TransformOutput"] = request["TransformOutput"]
    if request.get("DataCaptureConfig"):
        answer["DataCaptureConfig"] = request["DataCaptureConfig"]
    answer["TransformResources"] = request["TransformResources"]
    answer["CreationTime"] = _stamp(record.created)
    if record.started is not None:
        answer["TransformStartTime"] = _stamp(record.started)
    if record.ended is not None:
        answer["TransformEndTime"] = _stamp(record.ended)
    for key in ("DataProcessing", "ExperimentConfig"):
        if request.get(key):
            answer[key] = request[key]
    answer["Fedsage"] = {
        "Files": list(record.files),
        "Log": str(job_log(record.name)),
        "ModelEnvironment": dict(request.get("ModelEnvironment") or {}),
    }
    return answer
