"""A training job's description: its name, inputs, code, runtime and where outputs go."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..runtimes.base import Runtime

__all__ = [
    "DEFAULT_BASE_JOB_NAME",
    "JobSpec",
    "base_from_name",
    "check_job_name",
    "name_from_base",
]

DEFAULT_BASE_JOB_NAME = "sagemaker-scikit-learn"
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_STAMP = re.compile(r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}$|-\d{6}-\d{4}$")


def name_from_base(base: str, now: datetime | None = None) -> str:
    """``base[:39] + '-' + UTC timestamp with milliseconds``, as the SageMaker SDK names jobs."""
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%d-%H-%M-%S-") + f"{now.microsecond // 1000:03d}"
    return f"{base[:39]}-{stamp}"


def base_from_name(name: str) -> str:
    """Strip a timestamp suffix added by :func:`name_from_base`."""
    return _STAMP.sub("", name)


def check_job_name(name: str, param: str = "base_job_name") -> str:
    """Return ``name`` if it follows SageMaker's TrainingJobName rule."""
    if not isinstance(name, str) or not _JOB_NAME.match(name):
        raise ConfigurationError(
            f"the {param} parameter {name!r} is not a valid SageMaker name: use 1 to 63 "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return name


def check_base_job_name(base: str | None) -> str:
    """Check a ``base_job_name`` (the part before the timestamp); default when None."""
    if base is None:
        return DEFAULT_BASE_JOB_NAME
    # The full name is base[:39] + 24 characters; check what will really be used.
    check_job_name(name_from_base(base), "base_job_name")
    return base


@dataclass
class JobSpec:
    """Everything a job runner needs, written as ``spec.json`` in the job folder."""

    job_name: str
    base_job_name: str
    mode: str
    bucket: str
    prefix: str
    region: str
    instance_type: str
    framework_version: str
    program: str
    submit_directory: str
    channels: dict[str, dict[str, str | None]]
    hyperparameters: dict[str, str]
    output_path: str
    runtime: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    #: ``scikit-learn`` or ``xgboost``: which SageMaker image the job stands for.
    framework: str = "scikit-learn"
    #: A built-in algorithm run by fedsage's own program (``xgboost``), or None for a
    #: user's script; an algorithm gets no arguments and no code channel.
    algorithm: str | None = None

    def _artifact(self, name: str) -> str:
        # SageMaker puts artifacts under <output_path>/<job>/output/; the SDK's local mode
        # copies them straight into a file:// output_path.
        if self.output_path.startswith("file://"):
            return f"{self.output_path.rstrip('/')}/{name}"
        return f"{self.output_path.rstrip('/')}/{self.job_name}/output/{name}"

    @property
    def model_uri(self) -> str:
        """Where ``model.tar.gz`` goes."""
        return self._artifact("model.tar.gz")

    @property
    def output_uri(self) -> str:
        """Where ``output.tar.gz`` goes."""
        return self._artifact("output.tar.gz")

    @property
    def data_prefix(self) -> str:
        return f"{self.prefix}/{self.job_name}/data".lstrip("/")

    def get_runtime(self) -> Runtime:
        from ..runtimes.base import Runtime

        return Runtime.from_dict(self.runtime)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> JobSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))
