"""The estimator-like handle that ``train_sklearn_model`` returns.

Notebooks pass it to ``deploy`` and ``deploy_to_kyma``; it answers the questions the
SageMaker SDK's ``SKLearn`` estimator answers (``latest_training_job.name``,
``model_data``, ``hyperparameters()``, ``wait()``, ``logs()``), in either mode.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["JobControl", "TrainingJob", "TrainingJobHandle"]


class JobControl(Protocol):
    """What a handle asks of the backend that runs its job."""

    mode: str

    def describe_training_job(self, name: str) -> dict[str, Any]: ...

    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]: ...

    def stop_training_job(self, name: str) -> None: ...


class TrainingJob:
    """One training job, like the SDK's ``estimator.latest_training_job``."""

    def __init__(self, backend: JobControl, name: str) -> None:
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


class TrainingJobHandle:
    """What ``DwcSagemaker.train_sklearn_model`` returns: an estimator-like handle.

    Attributes
    ----------
    base_job_name : str
        The prefix of the job name.
    framework_version : str
        The scikit-learn image version the job ran on (or ``host``).
    entry_point, source_dir, instance_type, output_path : str
        As passed to (or derived by) ``train_sklearn_model``.
    """

    def __init__(
        self,
        backend: JobControl,
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

    def __repr__(self) -> str:
        return (
            f"TrainingJobHandle(job_name={self._current_job_name!r}, "
            f"framework_version={self.framework_version!r}, mode={self._backend.mode!r})"
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
