"""The backend interface that ``DwcSagemaker`` delegates to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..channels import ChannelPlan
from ..storage import ObjectStore
from ..training.handle import TrainingJobHandle

__all__ = ["Backend", "KymaInputs", "TrainingRequest"]


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


@dataclass
class KymaInputs:
    """What a Kyma deployment is built from, downloaded into a scratch folder."""

    model_tar: Path
    code_tar: Path | None
    program: str
    framework_version: str


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

    def completed_job(self, job_name: str) -> dict[str, Any]:
        """The description of ``job_name``, which must have completed (it has a model)."""
        from ..errors import ConfigurationError

        description = self.describe_training_job(job_name)
        status = description["TrainingJobStatus"]
        if status != "Completed":
            raise ConfigurationError(
                f"training job {job_name} is {status}, not Completed; only a completed job "
                "has a model to deploy (wait for it with .wait())"
            )
        return description

    # -- Kyma --------------------------------------------------------------------

    @abstractmethod
    def kyma_inputs(self, job_name: str, scratch: Path) -> KymaInputs:
        """Download a completed job's model and code into ``scratch``."""

    def deploy_to_kyma(
        self,
        job_name: str,
        *,
        profile_name: str | None,
        replicas: int,
        endpoint_name: str | None,
        progress: Any = None,
    ) -> str:
        """Deploy the model of ``job_name`` to Kyma; return its URL.

        Local mode starts replicas behind a gateway on 127.0.0.1; aws mode builds an
        image, pushes it to ECR and applies it to the cluster of the kubeconfig
        (``$KUBECONFIG``, else ``kubeconfig.yml`` in the working folder).
        """
        import tempfile

        from ..kyma.names import derive_name

        name = derive_name(job_name, endpoint_name)
        with tempfile.TemporaryDirectory(prefix="fedsage-kyma-") as tmp:
            inputs = self.kyma_inputs(job_name, Path(tmp))
            return self._deploy_kyma(
                name,
                job_name,
                inputs,
                profile_name=profile_name,
                replicas=replicas,
                progress=progress,
            )

    @abstractmethod
    def _deploy_kyma(
        self,
        name: str,
        job_name: str,
        inputs: KymaInputs,
        *,
        profile_name: str | None,
        replicas: int,
        progress: Any,
    ) -> str:
        """Hand ``inputs`` to this mode's Kyma target; return the model's URL."""

