"""The backend interface that ``DwcSagemaker`` delegates to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..channels import ChannelPlan
from ..storage import ObjectStore
from ..training.handle import TrainingJobHandle

__all__ = ["Backend", "TrainingRequest"]


@dataclass
class TrainingRequest:
    """A validated ``train_sklearn_model`` call; nothing has been written yet."""

    channels: list[ChannelPlan]
    entry_point: Path
    source_dir: Path | str | None
    instance_type: str
    base_job_name: str
    hyperparameters: dict[str, str]
    framework_version: str
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Where jobs run and endpoints live: ``local`` (this machine) or ``aws``.

    ``DwcSagemaker`` validates every argument, then calls exactly one of these
    methods; a backend never re-validates the seed API's quirks.
    """

    mode: str
    store: ObjectStore
    prefix: str
    region: str

    @abstractmethod
    def train(self, request: TrainingRequest) -> TrainingJobHandle:
        """Upload inputs and code, start the job, return its handle at once."""

    @abstractmethod
    def describe_training_job(self, name: str) -> dict[str, Any]:
        """The DescribeTrainingJob response for ``name``."""

    @abstractmethod
    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]:
        """Block until the job ends; stream its log when ``logs`` asks for it."""

    @abstractmethod
    def stop_training_job(self, name: str) -> None:
        """Stop a running job."""

    @abstractmethod
    def list_training_jobs(self) -> list[dict[str, Any]]:
        """Summaries of the known training jobs, newest last."""

    @abstractmethod
    def training_log(self, name: str) -> list[str]:
        """The log lines of a job written so far."""

    @abstractmethod
    def download_output(self, name: str, dest: Path) -> Path | None:
        """Extract the job's ``output.tar.gz`` into ``dest``; None when there is none."""

    # -- endpoints -------------------------------------------------------------

    @abstractmethod
    def deploy(
        self,
        job_name: str,
        *,
        initial_instance_count: int,
        instance_type: str,
        endpoint_name: str | None,
        framework_version: str | None = None,
    ) -> str:
        """Create an endpoint serving the model of ``job_name``; return its name."""

    @abstractmethod
    def predict(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        """Invoke an endpoint; return (response body, response content type).

        Raises :class:`~fedsage.errors.InvocationError` when the model answers with an
        error status (SageMaker's ModelError).
        """

    @abstractmethod
    def delete_endpoint(self, endpoint_name: str) -> None:
        """Delete an endpoint (and, in aws mode, its config and model)."""

    @abstractmethod
    def list_endpoints(self) -> list[dict[str, Any]]:
        """DescribeEndpoint-shaped summaries of the known endpoints."""

    @abstractmethod
    def delete_channel_data(self, job_name: str) -> int:
        """Remove the training data uploaded for ``job_name``; return objects removed."""

