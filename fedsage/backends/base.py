"""The backend interface: everything ``DwcSagemaker``, the CLI and the demo ask of a mode.

Like an httpx transport, a backend is where the two modes differ and nowhere else: the
callers above hold a :class:`Backend` and never ask which mode it is.  What differs in
what a caller may *pass* (an instance type, the host runtime, a Kyma profile) is
declared in :class:`Capabilities`, which the callers read instead of the mode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..channels import ChannelPlan
from ..errors import ConfigurationError
from ..storage import ObjectStore
from ..training.records import TERMINAL_STATUSES
from ..training.settings import EstimatorSettings

if TYPE_CHECKING:
    from ..scoring.engine import PendingRequest, ScoringSummary

__all__ = ["Backend", "Capabilities", "KymaInputs", "StartedJob", "TrainingRequest"]


@dataclass
class TrainingRequest:
    """A validated training call; nothing has been written yet.

    A script-mode job (``train_sklearn_model``) has an ``entry_point``; a built-in
    algorithm (``train_sagemaker_model``) has ``algorithm`` set instead, and its
    hyperparameters are the plain strings the SDK's generic ``Estimator`` sends.
    """

    channels: list[ChannelPlan]
    entry_point: Path | None
    source_dir: Path | str | None
    instance_type: str
    base_job_name: str
    hyperparameters: dict[str, str]
    framework_version: str
    settings: EstimatorSettings = field(default_factory=EstimatorSettings)
    framework: str = "scikit-learn"
    algorithm: str | None = None
    instance_count: int = 1

    @property
    def program(self) -> str:
        """The entry script's file name ('' for a built-in algorithm)."""
        return self.entry_point.name if self.entry_point is not None else ""


@dataclass
class StartedJob:
    """A job that has just been started.

    ``estimator`` is the object the caller should hand to the user when the backend has
    one of its own (aws mode: the SageMaker SDK's fitted estimator); otherwise the
    caller builds a local handle from the other fields.
    """

    name: str
    output_path: str
    hyperparameters: dict[str, str]
    estimator: Any = None


@dataclass
class KymaInputs:
    """What a model is served from (an endpoint, Kyma), downloaded into a scratch folder.

    ``env`` holds the variables the serving code needs beyond the usual ones (a
    built-in algorithm's default content types, for example).
    """

    model_tar: Path
    code_tar: Path | None
    program: str
    framework_version: str
    framework: str = "scikit-learn"
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a backend accepts, for the checks the callers run before calling it.

    Attributes
    ----------
    default_instance_type : str or None
        The ``instance_type`` of a training job when none is given; ``None`` means the
        caller must name one.
    local_instance_types : bool
        Whether ``instance_type='local'`` (or ``'local_gpu'``) runs.
    host_runtime : bool
        Whether ``framework_version='host'`` (fedsage's own environment) runs.
    kyma_needs_profile : bool
        Whether ``deploy_to_kyma`` needs an AWS profile (to push the image to ECR).
    uses_role : bool
        Whether an IAM role means anything.
    store_lists_cheaply : bool
        Whether checking that an ``s3://`` input exists costs nothing worth avoiding
        (a folder tree), so calls can refuse a missing input before starting a job.
    file_outputs : bool
        Whether a job's ``output_path`` may be a ``file://`` folder.
    builtin_algorithms : tuple of str or None
        The SageMaker built-in algorithms that train here (``None``: every one).
    distributed_training : bool
        Whether a built-in algorithm may train on more than one instance.
    """

    default_instance_type: str | None
    local_instance_types: bool
    host_runtime: bool
    kyma_needs_profile: bool
    uses_role: bool
    store_lists_cheaply: bool
    file_outputs: bool
    builtin_algorithms: tuple[str, ...] | None
    distributed_training: bool


class Backend(ABC):
    """Where jobs run and endpoints live: this machine (``local``) or ``aws``.

    Callers validate every argument against :attr:`capabilities` first; a backend does
    not check the seed API's arguments again.
    """

    mode: str
    capabilities: Capabilities
    store: ObjectStore
    prefix: str
    region: str

    # -- training jobs ---------------------------------------------------------

    @abstractmethod
    def start_training_job(self, request: TrainingRequest) -> StartedJob:
        """Upload inputs and code and start the job; return at once."""

    @abstractmethod
    def attach(self, job_name: str) -> Any:
        """The backend's own estimator object for an existing job, or ``None``."""

    @abstractmethod
    def describe_training_job(self, name: str) -> dict[str, Any]:
        """The DescribeTrainingJob response for ``name``."""

    @abstractmethod
    def list_training_jobs(self) -> list[dict[str, Any]]:
        """Summaries of the known training jobs, oldest first."""

    @abstractmethod
    def training_log(self, name: str) -> list[str]:
        """The log lines of a job written so far."""

    @abstractmethod
    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]:
        """Block until the job ends; stream its log when ``logs`` asks for it."""

    @abstractmethod
    def stop_training_job(self, name: str) -> None:
        """Stop a running job (nothing happens to a job that has ended)."""

    @abstractmethod
    def training_metrics(self, name: str) -> list[dict[str, Any]]:
        """The job's metric series: ``{"Timestamp", "MetricName", "Value"}`` per point."""

    @abstractmethod
    def download_output(self, name: str, dest: Path) -> Path | None:
        """Extract the job's ``output.tar.gz`` into ``dest``; None when there is none."""

    @abstractmethod
    def delete_channel_data(self, job_name: str) -> int:
        """Remove the training data uploaded for ``job_name``; return objects removed."""

    def completed_job(self, job_name: str) -> dict[str, Any]:
        """The description of ``job_name``, which must have completed (it has a model)."""
        description = self.describe_training_job(job_name)
        status = description["TrainingJobStatus"]
        if status != "Completed":
            raise ConfigurationError(
                f"training job {job_name} is {status}, not Completed; only a completed job "
                "has a model to deploy (wait for it with .wait())"
            )
        return description

    def job_has_ended(self, name: str) -> bool:
        """Whether the job's status is one that never changes again."""
        return self.describe_training_job(name)["TrainingJobStatus"] in TERMINAL_STATUSES

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
    def describe_endpoint(self, name: str) -> dict[str, Any]:
        """The DescribeEndpoint response for ``name`` (local mode adds ``Local``)."""

    @abstractmethod
    def list_endpoints(self) -> list[dict[str, Any]]:
        """DescribeEndpoint-shaped summaries of the known endpoints, oldest first."""

    def list_warm_parents(self) -> list[dict[str, Any]]:
        """The processes that keep a runtime's libraries imported for new endpoints.

        Only local mode has them (see :mod:`fedsage.serving.warm`); elsewhere none.
        """
        return []

    @abstractmethod
    def endpoint_logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        """The endpoint's log lines; with ``follow``, keep yielding new ones."""

    @abstractmethod
    def invoke_endpoint(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        """Invoke an endpoint; return (response body, response content type).

        Raises :class:`~fedsage.errors.InvocationError` when the model answers with an
        error status (SageMaker's ModelError).
        """

    @abstractmethod
    def delete_endpoint(self, endpoint_name: str) -> None:
        """Delete an endpoint (and, in aws mode, its config and model)."""

    # -- batch transform -------------------------------------------------------

    @abstractmethod
    def transformer(self, job_name: str, **settings: Any) -> Any:
        """A Batch Transform ``Transformer`` for the model of ``job_name``.

        ``settings`` are the SDK's ``Estimator.transformer`` arguments.  Local mode
        returns :class:`fedsage.scoring.transformer.Transformer`; aws mode the SDK's own
        ``sagemaker.transformer.Transformer`` of the attached estimator.
        """

    # -- batch scoring -----------------------------------------------------------

    @abstractmethod
    def batch_transform(self, model: str, pending: PendingRequest) -> ScoringSummary:
        """Score with ``model`` (a training job or endpoint name) the request that
        ``pending.open()`` opens (its input and target checked), and write its target in
        one commit; see :mod:`fedsage.scoring`.  The backend opens the request when it
        suits it (locally: while the model server starts)."""

    # -- Kyma ------------------------------------------------------------------

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
