"""SageMaker's Batch Transform surface in local mode: ``Transformer`` and its jobs.

``handle.transformer(...)`` (the local training handle) returns a :class:`Transformer`
with the SDK's attributes; :meth:`Transformer.transform` checks everything up front
(CreateTransformJob's fields, limits and combinations; the input files exist), records
the job, and runs it in a thread of this process: ``wait=True`` blocks until it ends,
``wait=False`` returns at once and :meth:`Transformer.wait` blocks later.

A job runs in the process that started it.  When that process exits (the notebook
kernel stops), its running jobs are stopped first: no new request is sent, files not
finished get no ``.out``, the model server is deleted and the job ends ``Stopped`` (the
exit waits for that, at most for a server start or the requests in flight).  If the
process is killed outright (SIGKILL), the next Describe reports the job ``Failed`` (its
process is gone); its temporary model server, named ``score-<job>-...``, is then left
for ``fedsage endpoints delete``.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
from typing import Any

from ..errors import ConfigurationError, TransformJobError
from ..training.spec import name_from_base
from .data_processing import DataProcessing
from .transform_io import list_inputs
from .transform_jobs import (
    JobSettings,
    TransformJobRecord,
    check_job_settings,
    check_model_client_config,
    check_name,
    describe,
    job_log,
    refresh,
    transform_jobs,
)
from .transform_run import JobPlan, ModelFiles, ModelSource, run_job

__all__ = ["ModelFiles", "ModelSource", "TransformJob", "Transformer"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_EXIT_GRACE = 130.0  # a model server start (120 s at most) or an in-flight request

# name -> (thread, stop event) of the jobs this process runs.
_RUNNING: dict[str, tuple[threading.Thread, threading.Event]] = {}
_RUNNING_LOCK = threading.Lock()


def _check_bool(value: Any, param: str, caller: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"the {param} parameter of {caller} must be True or False; got {value!r} instead"
        )
    return value


class TransformJob:
    """One transform job, like the SDK's ``transformer.latest_transform_job``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.job_name = name

    def __repr__(self) -> str:
        return f"TransformJob(name={self.name!r})"

    def describe(self) -> dict[str, Any]:
        """The DescribeTransformJob response."""
        return describe(refresh(transform_jobs.get(self.name)))

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Block until the job ends; print its log with ``logs``.

        Raises
        ------
        TransformJobError
            When the job failed (the SDK's "Error for Transform job ...: Failed." text).
        """
        _check_bool(logs, "logs", "wait")
        log = job_log(self.name)
        offset = 0
        try:
            while True:
                record = refresh(transform_jobs.get(self.name))
                if logs:
                    offset = _print_new(log, offset)
                if record.has_ended:
                    break
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            self.stop()
            raise
        if logs:
            _print_new(log, offset)
        running = _RUNNING.get(self.name)
        if running is not None:  # the record is final; let the thread finish its exit
            running[0].join()
        if record.status == "Failed":
            raise TransformJobError(self.name, record.status, record.failure_reason or "")
        if record.status == "Stopped":
            logger.warning("transform job %s was stopped", self.name)
            warnings.warn(f"transform job {self.name} was stopped", stacklevel=2)
        return describe(record)

    def stop(self, wait: bool = True) -> None:
        """StopTransformJob: no new request is sent; files not finished get no ``.out``.

        Works from any process: the job's status becomes ``Stopping`` in the registry,
        which the process running the job watches.
        """
        _check_bool(wait, "wait", "stop")
        record = refresh(transform_jobs.get(self.name))
        if record.has_ended:
            return

        def stopping(current: TransformJobRecord) -> None:
            if not current.has_ended:
                current.status = "Stopping"

        transform_jobs.modify(self.name, stopping)
        running = _RUNNING.get(self.name)
        if running is not None:
            running[1].set()
        if not wait:
            return
        if running is not None:
            running[0].join()
            return
        while not refresh(transform_jobs.get(self.name)).has_ended:
            time.sleep(_POLL_SECONDS)


def _print_new(path: Any, offset: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    complete = data.rfind(b"\n") + 1
    if complete:
        print(data[:complete].decode("utf-8", "replace"), end="", flush=True)
    return offset + complete


class Transformer:
    """Runs Batch Transform jobs on a trained model, on this machine.

    Build it with ``handle.transformer(...)``; the attributes are those of the SDK's
    ``sagemaker.transformer.Transformer``.
    """

    def __init__(self, source: ModelSource, settings: JobSettings) -> None:
        self._source = source
        self._settings = settings
        self.model_name = settings.model_name
        self.instance_count = settings.instance_count
        self.instance_type = settings.instance_type
        self.strategy = settings.strategy
        self.assemble_with = settings.assemble_with
        self.output_path = settings.output_path
        self.output_kms_key = settings.output_kms_key
        self.accept = settings.accept
        self.env = dict(settings.env)
        self.max_concurrent_transforms = settings.max_concurrent_transforms
        self.max_payload = settings.max_payload
        self.tags = list(settings.tags)
        self.volume_kms_key = settings.volume_kms_key
        self.base_transform_job_name = settings.base_transform_job_name
        self.latest_transform_job: TransformJob | None = None
        self._current_job_name: str | None = None
        self._reset_output_path = False

    @classmethod
    def create(cls, source: ModelSource, **settings: Any) -> Transformer:
        """Check ``settings`` (the SDK's ``transformer`` arguments) and build a transformer.

        Raises
        ------
        ConfigurationError
            Naming the parameter.
        """
        return cls(source, check_job_settings(**settings))

    def __repr__(self) -> str:
        return (
            f"Transformer(model_name={self.model_name!r}, instance_count={self.instance_count}, "
            f"instance_type={self.instance_type!r})"
        )

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: dict[str, str] | None = None,
        model_client_config: dict[str, int] | None = None,
        batch_data_capture_config: Any = None,
        wait: bool = True,
        logs: bool = True,
    ) -> None:
        """Start a transform job on ``data``, as the SDK's ``Transformer.transform``.

        Parameters
        ----------
        data : str
            ``s3://bucket/prefix`` in the local store, a ``file://`` URI, or a path (a file
            or a folder); with ``data_type='ManifestFile'``, the manifest.
        data_type : {'S3Prefix', 'ManifestFile'}
        content_type : str, optional
            The ``Content-Type`` of every request (what the model's ``input_fn`` decodes).
        compression_type : {None, 'None', 'Gzip'}
        split_type : {None, 'None', 'Line'}
            ``RecordIO`` and ``TFRecord`` are refused in local mode.
        job_name : str, optional
            Default: the base name plus a timestamp.
        input_filter, output_filter : str, optional
            JSONPath of SageMaker's subset (see :mod:`fedsage.scoring.jsonpath`).
        join_source : {None, 'None', 'Input'}
        experiment_config : dict, optional
            Echoed by Describe.
        model_client_config : dict, optional
            ``InvocationsTimeoutInSeconds`` (1-3600) and ``InvocationsMaxRetries`` (0-3).
        batch_data_capture_config : None
            Data capture is not available in local mode.
        wait : bool, default=True
            Block until the job ends.
        logs : bool, default=True
            With ``wait``, print the job's log.

        Raises
        ------
        ConfigurationError
            For any invalid argument or combination, before anything runs.
        TransformJobError
            With ``wait``, when the job failed.
        """
        caller = "transform"
        plan, request = self._plan(
            data, data_type, content_type, compression_type, split_type, job_name,
            input_filter, output_filter, join_source, experiment_config,
            model_client_config, batch_data_capture_config, wait, logs,
        )  # fmt: skip
        record = _new_record(plan.name, request, self._source.region)
        try:
            transform_jobs.add(record)
        except KeyError:
            raise ConfigurationError(
                f"the job_name parameter of {caller}: a transform job named {plan.name!r} "
                "already exists; names are unique, so pick another"
            ) from None
        job_log(plan.name).write_text("", encoding="utf-8")
        self._current_job_name = plan.name
        self.latest_transform_job = TransformJob(plan.name)
        _start(plan, self._source)
        if wait:
            self.latest_transform_job.wait(logs=logs)

    def _plan(
        self,
        data: Any,
        data_type: Any,
        content_type: Any,
        compression_type: Any,
        split_type: Any,
        job_name: Any,
        input_filter: Any,
        output_filter: Any,
        join_source: Any,
        experiment_config: Any,
        model_client_config: Any,
        batch_data_capture_config: Any,
        wait: Any,
        logs: Any,
    ) -> tuple[JobPlan, dict[str, Any]]:
        caller = "transform"
        if not isinstance(data, str) or not data:
            raise ConfigurationError(
                f"the data parameter of {caller} must be an s3:// URI, a file:// URI or a "
                f"path; got {data!r} instead"
            )
        if data_type not in ("S3Prefix", "ManifestFile"):
            raise ConfigurationError(
                f"the data_type parameter of {caller} must be 'S3Prefix' or 'ManifestFile'; "
                f"got {data_type!r} instead"
            )
        if content_type is not None and not isinstance(content_type, str):
            raise ConfigurationError(f"the content_type parameter of {caller} must be a str")
        compression = "None" if compression_type is None else compression_type
        if compression not in ("None", "Gzip"):
            raise ConfigurationError(
                f"the compression_type parameter of {caller} must be 'Gzip', 'None' or None; "
                f"got {compression_type!r} instead"
            )
        split = "None" if split_type is None else split_type
        if split in ("RecordIO", "TFRecord"):
            raise ConfigurationError(
                f"split_type={split!r} is not supported in local mode (fedsage splits CSV, JSON "
                "Lines and other text by line); use split_type='Line', or run the job in aws "
                "mode"
            )
        if split not in ("None", "Line"):
            raise ConfigurationError(
                f"the split_type parameter of {caller} must be 'Line', 'None' or None (the "
                f"service also has 'RecordIO' and 'TFRecord'); got {split_type!r} instead"
            )
        if batch_data_capture_config is not None:
            raise ConfigurationError(
                "the batch_data_capture_config parameter of transform must be None in local "
                "mode: data capture is a service feature; leave it out"
            )
        if experiment_config is not None and not isinstance(experiment_config, dict):
            raise ConfigurationError(f"the experiment_config parameter of {caller} must be a dict")
        client_config = check_model_client_config(model_client_config)
        _check_bool(wait, "wait", caller)
        _check_bool(logs, "logs", caller)
        settings = self._settings
        assemble = settings.assemble_with or "None"
        processing = DataProcessing.from_settings(
            input_filter=input_filter,
            output_filter=output_filter,
            join_source=join_source,
            content_type=content_type,
            accept=settings.accept,
            split_type=split,
            assemble_with=assemble,
        )
        if job_name is None:
            base = settings.base_transform_job_name or self._source.base_job_name
            name = name_from_base(base or self.model_name)
        else:
            name = check_name(job_name, "job_name")
        # As the SDK: a default output path is worked out again for every job.
        reset = self.output_path is None or self._reset_output_path
        output_path = (
            f"{self._source.default_output.rstrip('/')}/{name}" if reset else self.output_path
        )
        assert output_path is not None
        files = list_inputs(data, data_type)  # refuses empty input before any work
        plan = JobPlan(
            name=name,
            files=files,
            output_path=output_path,
            content_type=content_type,
            compression=compression,
            split_type=split,
            accept=settings.accept,
            assemble_with=assemble,
            processing=processing,
            instance_count=settings.instance_count,
            strategy=settings.strategy,
            max_payload=settings.max_payload,
            max_concurrent=settings.max_concurrent_transforms,
            env=dict(settings.env),
            retries=client_config["InvocationsMaxRetries"],
            workers=settings.model_server_workers,
        )
        request = self._request(plan, data, data_type, split, compression, client_config)
        if experiment_config:
            request["ExperimentConfig"] = dict(experiment_config)
        if input_filter is not None or output_filter is not None or join_source is not None:
            request["DataProcessing"] = {
                "InputFilter": input_filter or "$",
                "OutputFilter": output_filter or "$",
                "JoinSource": join_source or "None",
            }
        self.output_path, self._reset_output_path = output_path, reset
        return plan, request

    def _request(
        self,
        plan: JobPlan,
        data: str,
        data_type: str,
        split: str,
        compression: str,
        client_config: dict[str, int],
    ) -> dict[str, Any]:
        settings = self._settings
        transform_input: dict[str, Any] = {
            "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": data}},
            "CompressionType": compression,
            "SplitType": split,
        }
        if plan.content_type is not None:
            transform_input["ContentType"] = plan.content_type
        output: dict[str, Any] = {
            "S3OutputPath": plan.output_path,
            "AssembleWith": plan.assemble_with,
        }
        if settings.accept is not None:
            output["Accept"] = settings.accept
        if settings.output_kms_key is not None:
            output["KmsKeyId"] = settings.output_kms_key
        resources: dict[str, Any] = {
            "InstanceType": settings.instance_type,
            "InstanceCount": settings.instance_count,
        }
        if settings.volume_kms_key is not None:
            resources["VolumeKmsKeyId"] = settings.volume_kms_key
        request: dict[str, Any] = {
            "TransformJobName": plan.name,
            "ModelName": self.model_name,
            "ModelClientConfig": client_config,
            "Environment": dict(settings.env),
            "TransformInput": transform_input,
            "TransformOutput": output,
            "TransformResources": resources,
        }
        if settings.strategy is not None:
            request["BatchStrategy"] = settings.strategy
        if settings.max_concurrent_transforms is not None:
            request["MaxConcurrentTransforms"] = settings.max_concurrent_transforms
        if settings.max_payload is not None:
            request["MaxPayloadInMB"] = settings.max_payload
        if settings.tags:
            request["Tags"] = list(settings.tags)
        # Not a CreateTransformJob field: the model's variables, which the service keeps
        # on the model (CreateModel) and Describe shows under Fedsage.ModelEnvironment.
        request["ModelEnvironment"] = dict(self._source.model_env)
        if settings.model_server_workers is not None:  # the SDK puts it in the model's env
            request["ModelEnvironment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(
                settings.model_server_workers
            )
        return request

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Block until the latest job ends (see :meth:`TransformJob.wait`)."""
        return self._latest("wait").wait(logs=logs)

    def stop_transform_job(self, wait: bool = True) -> None:
        """Stop the latest job (``Stopping``, then ``Stopped``)."""
        self._latest("stop_transform_job").stop(wait=wait)

    def describe(self) -> dict[str, Any]:
        """The DescribeTransformJob response of the latest job."""
        return self._latest("describe").describe()

    def delete_model(self) -> None:
        """The SDK deletes the SageMaker model; local mode creates none, so nothing happens."""

    def _latest(self, caller: str) -> TransformJob:
        if self.latest_transform_job is None:
            raise ConfigurationError(f"{caller} needs a transform job: call transform(...) first")
        return self.latest_transform_job


def _new_record(name: str, request: dict[str, Any], region: str) -> TransformJobRecord:
    from .._process import ProcessIdentity

    return TransformJobRecord(
        name=name,
        created=time.time(),
        request=request,
        arn=f"arn:aws:sagemaker:{region}:000000000000:transform-job/{name.lower()}",
        owner=ProcessIdentity.current().to_dict(),
    )


def _start(plan: JobPlan, source: ModelSource) -> None:
    stop = threading.Event()

    def run() -> None:
        try:
            run_job(plan, source, stop)
        finally:
            with _RUNNING_LOCK:
                _RUNNING.pop(plan.name, None)

    thread = threading.Thread(target=run, name=f"fedsage-transform-{plan.name}", daemon=True)
    with _RUNNING_LOCK:
        _RUNNING[plan.name] = (thread, stop)
    thread.start()


@atexit.register
def _stop_running_jobs() -> None:
    """At interpreter exit, stop this process's jobs so none is left ``InProgress``."""
    for _thread, stop in list(_RUNNING.values()):
        stop.set()
    deadline = time.monotonic() + _EXIT_GRACE
    for thread, _stop in list(_RUNNING.values()):
        thread.join(max(0.0, deadline - time.monotonic()))
