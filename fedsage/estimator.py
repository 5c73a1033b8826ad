"""The estimator-like handle that ``train_sklearn_model`` returns in local mode.

It answers what notebooks ask the SageMaker SDK's ``SKLearn`` estimator:
``latest_training_job`` (``name``, ``describe()``, ``wait()``, ``stop()``),
``model_data``, ``hyperparameters()``, ``logs()``, ``deploy()`` (a
:class:`~fedsage.predictor.Predictor`) and ``training_job_analytics``.  In aws mode
``train_sklearn_model`` returns the SDK's own fitted estimator instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _validation as check
from .errors import ConfigurationError
from .predictor import Predictor
from .training.spec import check_job_name

if TYPE_CHECKING:
    import pandas as pd

    from .backends import Backend

__all__ = ["TrainingJob", "TrainingJobAnalytics", "TrainingJobHandle", "check_deploy"]

# The SDK's sentinel for "use the training job's VPC configuration".
_VPC_CONFIG_DEFAULT = "VPC_CONFIG_DEFAULT"


def check_deploy(
    backend: Backend,
    initial_instance_count: Any,
    instance_type: Any,
    endpoint_name: Any,
    caller: str,
) -> str:
    """Check what every deploy call takes; return the instance type.

    Raises
    ------
    ConfigurationError
        Naming the parameter.
    """
    check.check_positive_int(initial_instance_count, "initial_instance_count", caller)
    instance = check.check_instance_type(
        instance_type,
        caller,
        default=None,
        local_allowed=backend.capabilities.local_instance_types,
    )
    if endpoint_name is not None:
        check_job_name(endpoint_name, "endpoint_name")
    return instance


class TrainingJob:
    """One training job, like the SDK's ``estimator.latest_training_job``."""

    def __init__(self, backend: Backend, name: str) -> None:
        self._backend = backend
        self.name = name
        self.job_name = name

    def __repr__(self) -> str:
        return f"TrainingJob(name={self.name!r}, mode={self._backend.mode!r})"

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob response for this job."""
        return self._backend.describe_training_job(self.name)

    def wait(self, logs: str | bool = "All") -> dict[str, Any]:
        """Block until the job ends; raise :class:`~fedsage.errors.TrainingError` if it failed."""
        return self._backend.wait_training_job(self.name, logs=logs)

    def stop(self) -> None:
        """Stop the job (its status becomes ``Stopped``)."""
        self._backend.stop_training_job(self.name)


class TrainingJobAnalytics:
    """The metric series of a job, like the SDK's ``TrainingJobAnalytics``.

    Metrics come from the job's ``metric_definitions``: each regex is matched against
    every log line, as SageMaker does.
    """

    def __init__(self, backend: Backend, job_name: str) -> None:
        self._backend = backend
        self.name = job_name

    def __repr__(self) -> str:
        return f"TrainingJobAnalytics(job_name={self.name!r})"

    def dataframe(self, force_refresh: bool = False) -> pd.DataFrame:
        """One row per data point: ``timestamp`` (seconds since training started),
        ``metric_name`` and ``value``, as the SDK's analytics frame."""
        import pandas as pd

        points = self._backend.training_metrics(self.name)
        start = self._backend.describe_training_job(self.name).get("TrainingStartTime")
        rows = []
        for point in points:
            stamp = point.get("Timestamp")
            if isinstance(stamp, datetime) and isinstance(start, datetime):
                offset = (stamp - start).total_seconds()
            else:
                offset = 0.0
            rows.append(
                {"timestamp": offset, "metric_name": point["MetricName"], "value": point["Value"]}
            )
        return pd.DataFrame(rows, columns=["timestamp", "metric_name", "value"])


class TrainingJobHandle:
    """What ``DwcSagemaker.train_sklearn_model`` returns in local mode.

    Attributes
    ----------
    base_job_name : str
        The prefix of the job name.
    framework_version : str
        The scikit-learn image version the job runs on (or ``host``).
    entry_point, source_dir, instance_type, output_path : str
        As passed to (or derived by) ``train_sklearn_model``.
    latest_training_job : TrainingJob
        The job itself.
    """

    def __init__(
        self,
        backend: Backend,
        job_name: str,
        *,
        base_job_name: str,
        framework_version: str,
        entry_point: str,
        source_dir: str | None,
        instance_type: str,
        output_path: str,
        hyperparameters: dict[str, str],
    ) -> None:
        self._backend = backend
        self._current_job_name = job_name
        self.base_job_name = base_job_name
        self.framework_version = framework_version
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.instance_type = instance_type
        self.instance_count = 1
        self.output_path = output_path
        self._hyperparameters = dict(hyperparameters)
        self.latest_training_job = TrainingJob(backend, job_name)

    @classmethod
    def from_description(cls, backend: Backend, description: dict[str, Any]) -> TrainingJobHandle:
        """A handle for an existing job, rebuilt from its DescribeTrainingJob response."""
        fedsage = description.get("Fedsage") or {}
        hyperparameters = dict(description.get("HyperParameters") or {})
        image = description.get("AlgorithmSpecification", {}).get("TrainingImage", "")
        return cls(
            backend,
            description["TrainingJobName"],
            base_job_name=str(fedsage.get("BaseJobName") or ""),
            framework_version=str(
                (fedsage.get("Runtime") or {}).get("framework_version")
                or image.rsplit(":", 1)[-1].split("-cpu")[0]
            ),
            entry_point=str(fedsage.get("Program") or ""),
            source_dir=None,
            instance_type=description.get("ResourceConfig", {}).get("InstanceType", "local"),
            output_path=description.get("OutputDataConfig", {}).get("S3OutputPath", ""),
            hyperparameters=hyperparameters,
        )

    def __repr__(self) -> str:
        return (
            f"TrainingJobHandle(job_name={self._current_job_name!r}, "
            f"framework_version={self.framework_version!r}, mode={self._backend.mode!r})"
        )

    def _repr_html_(self) -> str:
        from ._html import summary_table

        description = self.describe()
        return summary_table(
            "Training job",
            [
                ("name", self._current_job_name),
                ("status", description.get("TrainingJobStatus")),
                ("step", description.get("SecondaryStatus")),
                ("framework version", self.framework_version),
                ("entry point", self.entry_point),
                ("model", self.model_data),
                ("failure", description.get("FailureReason")),
            ],
        )

    @property
    def mode(self) -> str:
        return self._backend.mode

    @property
    def job_name(self) -> str:
        return self._current_job_name

    @property
    def model_data(self) -> str:
        """The ``s3://`` URI of ``model.tar.gz`` (where it is, or will be, stored)."""
        artifacts = self.describe().get("ModelArtifacts") or {}
        return str(
            artifacts.get("S3ModelArtifacts")
            or f"{self.output_path.rstrip('/')}/{self._current_job_name}/output/model.tar.gz"
        )

    @property
    def training_job_analytics(self) -> TrainingJobAnalytics:
        """The job's metric series (from ``metric_definitions``)."""
        return TrainingJobAnalytics(self._backend, self._current_job_name)

    def hyperparameters(self) -> dict[str, str]:
        """The hyperparameters as sent to SageMaker: JSON-encoded, reserved entries included."""
        return dict(self._hyperparameters)

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob response of the latest job."""
        return self.latest_training_job.describe()

    def wait(self, logs: str | bool = "All") -> dict[str, Any]:
        """Block until the job ends, printing its log as SageMaker does with ``logs='All'``."""
        return self.latest_training_job.wait(logs=logs)

    def logs(self) -> None:
        """Print the whole log of the job, following it until the job ends."""
        self._backend.wait_training_job(self._current_job_name, logs="All", raise_on_failure=False)

    def stop(self) -> None:
        """Stop the running job."""
        self.latest_training_job.stop()

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
    ) -> Predictor:
        """Deploy the trained model to an endpoint, as the SDK's ``estimator.deploy``.

        Parameters
        ----------
        initial_instance_count : int
            Server instances behind the endpoint.
        instance_type : str
            ``local`` or an ``ml.*`` type.
        serializer, deserializer : object, optional
            How :meth:`Predictor.predict` encodes requests and decodes answers; default
            ``.npy`` both ways, as the SDK's ``SKLearnPredictor``.
        accelerator_type : None
            Elastic Inference is gone from SageMaker; anything but ``None`` is an error.
        endpoint_name : str, optional
            The endpoint's name; generated from the base job name when omitted.
        wait : bool, default=True
            Accepted for the SDK's signature; fedsage returns once the endpoint serves.

        Returns
        -------
        Predictor

        Raises
        ------
        ConfigurationError
            For invalid arguments or a job that has not completed.
        EndpointError
            When the endpoint does not become healthy.
        """
        caller = "deploy"
        instance = check_deploy(
            self._backend, initial_instance_count, instance_type, endpoint_name, caller
        )
        if accelerator_type is not None:
            raise ConfigurationError(
                f"the accelerator_type parameter of {caller} must be None; got "
                f"{accelerator_type!r} instead (SageMaker retired Elastic Inference)"
            )
        check.check_bool(wait, "wait", caller)
        name = self._backend.deploy(
            self._current_job_name,
            initial_instance_count=int(initial_instance_count),  # type: ignore[arg-type]
            instance_type=instance,
            endpoint_name=endpoint_name,
        )
        return Predictor(name, self._backend, serializer=serializer, deserializer=deserializer)

    def transformer(
        self,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: dict[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | None = None,
        role: str | None = None,
        model_server_workers: int | None = None,
        volume_kms_key: str | None = None,
        entry_point: str | None = None,
        vpc_config_override: Any = _VPC_CONFIG_DEFAULT,
        enable_network_isolation: bool | None = None,
        model_name: str | None = None,
    ) -> Any:
        """A Batch Transform transformer for the trained model, as the SDK's
        ``Estimator.transformer``.

        Parameters
        ----------
        instance_count : int
            Instances (1-100); in local mode ``instance_count x max_concurrent_transforms``
            requests are in flight at once.
        instance_type : str
            ``local`` or an ``ml.*`` type.
        strategy : {'MultiRecord', 'SingleRecord'}, optional
            Records per request; default: the container's ``/execution-parameters``, else
            ``MultiRecord``.
        assemble_with : {'None', 'Line'}, optional
            ``Line`` ends every answer (or record, with data processing) with a newline.
        output_path : str, optional
            Where the ``.out`` files go; default ``s3://<bucket>[/<prefix>]/<job name>``.
        output_kms_key, volume_kms_key : str, optional
            Recorded (and echoed by Describe); nothing is encrypted on this machine.
        accept : str, optional
            The ``Accept`` of every request.
        env : dict, optional
            Extra variables for the model server (at most 16).
        max_concurrent_transforms, max_payload : int, optional
            Requests in flight per instance, and the request body limit in MB (0-100).
        tags : list of dict, optional
            ``[{"Key": ..., "Value": ...}]``, at most 50.
        model_server_workers : int, optional
            The model server's worker processes (``SAGEMAKER_MODEL_SERVER_WORKERS``);
            default ``instance_count x max_concurrent_transforms``, at most one per core.
        entry_point : None
            A different serving script is not supported in local mode: the model is
            served by the script that trained it (its ``model_fn`` and handlers).
        role, vpc_config_override, enable_network_isolation
            Accepted for the SDK's signature; they mean nothing on this machine.
        model_name : str, optional
            ``ModelName``; default the base job name and a timestamp, as the SDK does.

        Returns
        -------
        fedsage.scoring.transformer.Transformer
            In local mode (aws mode returns the SDK's own estimator, whose
            ``transformer`` is the SDK's).

        Raises
        ------
        ConfigurationError
            For invalid arguments, or a job that has not completed.
        """
        caller = "transformer"
        check.check_positive_int(instance_count, "instance_count", caller)
        if model_server_workers is not None:
            check.check_positive_int(model_server_workers, "model_server_workers", caller)
        if entry_point is not None:
            raise ConfigurationError(
                f"the entry_point parameter of {caller} must be None in local mode; got "
                f"{entry_point!r} instead (the model is served by the script that trained it: "
                "put its model_fn and handlers there)"
            )
        instance = check.check_instance_type(
            instance_type,
            caller,
            default=None,
            local_allowed=self._backend.capabilities.local_instance_types,
        )
        settings: dict[str, Any] = {
            "instance_count": instance_count,
            "instance_type": instance,
            "strategy": strategy,
            "assemble_with": assemble_with,
            "output_path": output_path,
            "output_kms_key": output_kms_key,
            "accept": accept,
            "env": env,
            "max_concurrent_transforms": max_concurrent_transforms,
            "max_payload": max_payload,
            "tags": tags,
            "role": role,
            "model_server_workers": model_server_workers,
            "volume_kms_key": volume_kms_key,
            "enable_network_isolation": enable_network_isolation,
            "model_name": model_name,
        }
        if vpc_config_override is not _VPC_CONFIG_DEFAULT:
            settings["vpc_config_override"] = vpc_config_override
        return self._backend.transformer(self._current_job_name, **settings)
