"""The local backend: a folder-tree object store, job runner processes, local endpoints."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._archive import extract_safely, pack_dir
from .._home import PRIVATE_UMASK, fedsage_home, open_private, write_private
from .._log import announce_once, follow_file
from .._process import ProcessIdentity
from .._progress import StepProgress
from ..builtin import xgboost as builtin_xgb
from ..channels import upload_channel
from ..errors import ConfigurationError, StorageError, TrainingError
from ..storage import LocalStore, parse_s3_uri
from ..storage.local import fetch_uri, put_uri, store_root, uri_exists
from ..training import contract, records
from ..training.metrics import METRICS_FILE, read_points
from ..training.settings import local_checkpoint_dir
from ..training.spec import JobSpec, name_from_base
from .base import Backend, Capabilities, KymaInputs, StartedJob, TrainingRequest

if TYPE_CHECKING:
    from ..scoring.engine import PendingRequest, ScoringRequest, ScoringSummary

__all__ = ["DEFAULT_LOCAL_BUCKET", "LOCAL_REGION", "LocalBackend", "store_root"]

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_BUCKET = "fedsage-local"
LOCAL_REGION = "us-east-1"
_POLL_SECONDS = 0.02
_STOP_TIMEOUT = 15.0

# Runner processes started by this process, kept so they are reaped (no zombies).
_RUNNERS: dict[str, subprocess.Popen[bytes]] = {}


class LocalBackend(Backend):
    """Runs everything on this machine; state lives under ``FEDSAGE_HOME``.

    Parameters
    ----------
    bucket_name : str or None
        The local bucket (default ``fedsage-local``, one for every job).
    prefix : str
        Key prefix for job data and artifacts.
    """

    mode = "local"
    capabilities = Capabilities(
        default_instance_type="local",
        local_instance_types=True,
        host_runtime=True,
        kyma_needs_profile=False,
        uses_role=False,
        store_lists_cheaply=True,
        file_outputs=True,
        builtin_algorithms=("xgboost",),
        distributed_training=False,
    )

    def __init__(self, bucket_name: str | None, prefix: str) -> None:
        self.store = LocalStore(store_root(), bucket_name or DEFAULT_LOCAL_BUCKET)
        self.prefix = prefix
        self.region = LOCAL_REGION

    def __repr__(self) -> str:
        return f"LocalBackend(bucket={self.store.bucket!r}, prefix={self.prefix!r})"

    # -- training ------------------------------------------------------------

    def _new_job_name(self, base: str) -> str:
        for _ in range(50):
            name = name_from_base(base)
            if records.jobs.find(name) is None and not records.job_dir(name).exists():
                return name
            time.sleep(0.002)
        raise ConfigurationError(f"could not find a free job name for base {base!r}")

    def _upload_source(self, request: TrainingRequest, job_name: str) -> tuple[str, str]:
        """Pack and store ``sourcedir.tar.gz``; return (its URI, the program name).

        A built-in algorithm has no code: its program is fedsage's own trainer.
        """
        if request.algorithm is not None:
            return "", str(builtin_xgb.TRAINING_PROGRAM)
        assert request.entry_point is not None  # the facade checked it
        program = request.entry_point.name
        if isinstance(request.source_dir, str):  # an s3:// URI of a sourcedir.tar.gz
            return request.source_dir, program
        location = request.settings.code_location or self.store.uri(self.prefix).rstrip("/")
        uri = f"{location}/{job_name}/source/sourcedir.tar.gz"
        dependencies = [Path(p) for p in request.settings.dependencies]
        with tempfile.TemporaryDirectory(prefix="fedsage-source-") as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            if request.source_dir is None:
                folder, only = request.entry_point.parent, [Path(program)]
            else:
                folder, only = request.source_dir, None
            pack_dir(folder, archive, only=only, extra=dependencies)
            return put_uri(uri, archive), program

    def start_training_job(self, request: TrainingRequest) -> StartedJob:
        from ..runtimes import cached_runtime
        from ..runtimes.check import runtime_warning

        local_checkpoint_dir(request.settings)  # refuse a path the sandbox cannot map, first
        if request.instance_type.startswith("ml."):
            announce_once(
                "ml-local",
                f"instance_type={request.instance_type!r} runs on this machine in local mode; "
                "the name is recorded with the job and used as is in aws mode",
            )
        # A runtime not built yet is built by the job's runner, so this returns at once.
        runtime = cached_runtime(request.framework_version, framework=request.framework)
        job_name = self._new_job_name(request.base_job_name)
        folder = records.job_dir(job_name)
        folder.mkdir(mode=0o700)
        data_prefix = f"{self.prefix}/{job_name}/data".lstrip("/")
        try:
            channels = {
                plan.name: {
                    "uri": upload_channel(plan, self.store, data_prefix),
                    "content_type": plan.content_type,
                    "distribution": plan.distribution,
                }
                for plan in request.channels
            }
            submit_directory, program = self._upload_source(request, job_name)
        except BaseException:
            self.store.delete_prefix(f"{self.prefix}/{job_name}/".lstrip("/"))
            _remove_tree(folder)
            raise
        hyperparameters = dict(request.hyperparameters)
        if request.algorithm is None:  # a script-mode job: the SDK's reserved entries
            hyperparameters.update(
                contract.reserved_hyperparameters(
                    program=program,
                    submit_directory=submit_directory,
                    job_name=job_name,
                    region=self.region,
                )
            )
        settings = request.settings
        if request.algorithm is not None and not settings.metric_definitions:
            # SageMaker gives a built-in algorithm its own metric definitions.
            settings = replace(settings, metric_definitions=builtin_xgb.metric_definitions())
        default_output = self.store.uri(self.prefix) if self.prefix else f"s3://{self.store.bucket}"
        output_path = request.settings.output_path or default_output
        spec = JobSpec(
            job_name=job_name,
            base_job_name=request.base_job_name,
            mode=self.mode,
            bucket=self.store.bucket,
            prefix=self.prefix,
            region=self.region,
            instance_type=request.instance_type,
            framework_version=request.framework_version,
            program=program,
            submit_directory=submit_directory,
            channels=channels,
            hyperparameters=hyperparameters,
            output_path=output_path,
            runtime={} if runtime is None else runtime.to_dict(),
            settings=settings.to_dict(),
            framework=request.framework,
            algorithm=request.algorithm,
        )
        write_private(folder / "spec.json", spec.to_json())
        record = records.JobRecord.new(spec, time.time())
        if runtime is None:
            record.set_progress(
                f"Preparing the framework runtime {request.framework_version} (first use)", None
            )
        else:
            warning = runtime_warning(runtime, request.framework_version)
            if warning:
                warnings.warn(warning, stacklevel=3)
                record.warnings.append(warning)
        records.jobs.add(record)
        with open_private(folder / "runner.err", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-S", "-m", "fedsage.training.runner", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=_runner_env(),
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        _RUNNERS[job_name] = process
        runner = ProcessIdentity.of(process.pid)
        records.jobs.modify(job_name, lambda job: setattr(job, "runner", job.runner or runner))
        logger.info("started local training job %s (runner pid %d)", job_name, process.pid)
        return StartedJob(job_name, output_path, hyperparameters)

    def attach(self, job_name: str) -> Any:
        self._job(job_name)  # a clear error for an unknown job
        return None

    def _job(self, name: str) -> records.JobRecord:
        process = _RUNNERS.get(name)
        if process is not None and process.poll() is not None:
            _RUNNERS.pop(name, None)
        return records.refresh_stale(records.jobs.get(name))

    def describe_training_job(self, name: str) -> dict[str, Any]:
        return self._job(name).describe()

    def list_training_jobs(self) -> list[dict[str, Any]]:
        return [records.refresh_stale(job).describe() for job in records.jobs.all()]

    def training_log(self, name: str) -> list[str]:
        self._job(name)
        lines, _ = records.tail_log(records.job_dir(name) / "log.txt")
        return lines

    def training_metrics(self, name: str) -> list[dict[str, Any]]:
        self._job(name)
        return read_points(records.job_dir(name) / METRICS_FILE)

    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]:
        show = logs not in ("None", False, None)
        log_path = records.job_dir(name) / "log.txt"
        offset = 0
        last_secondary = None
        preparing: StepProgress | None = None
        try:
            while True:
                job = self._job(name)
                if job.progress is not None:
                    if preparing is None:
                        preparing = StepProgress(f"{name}: runtime {job.framework_version}")
                    preparing.update(job.progress["message"], job.progress.get("fraction"))
                elif preparing is not None:
                    preparing.close("ready")
                    preparing = None
                if show:
                    if job.secondary_status != last_secondary:
                        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                        message = job.transitions[-1].message if job.transitions else ""
                        print(f"{stamp} {job.secondary_status} - {message}", flush=True)
                        last_secondary = job.secondary_status
                    lines, offset = records.tail_log(log_path, offset)
                    for line in lines:
                        print(line, flush=True)
                if job.ended:
                    break
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            self.stop_training_job(name)
            raise
        finally:
            if preparing is not None:
                preparing.close()
        _reap(name)
        if show:
            lines, offset = records.tail_log(log_path, offset)
            for line in lines:
                print(line, flush=True)
        if job.status == "Failed" and raise_on_failure:
            raise TrainingError(name, job.status, job.failure_reason or "")
        if job.status == "Stopped":
            logger.warning("training job %s was stopped", name)
        return job.describe()

    def stop_training_job(self, name: str) -> None:
        job = self._job(name)
        if job.ended:
            return

        def stopping(current: records.JobRecord) -> None:
            if not current.ended:
                current.status = "Stopping"
                current.move_to("Stopping", "Stopping the job", time.time())

        records.jobs.modify(name, stopping)
        runner = job.runner
        if runner is not None and runner.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            process = _RUNNERS.get(name)
            if process is not None:
                process.poll()
            if records.jobs.get(name).ended:
                _reap(name)
                return
            if runner is None or not runner.alive():
                break
            time.sleep(_POLL_SECONDS)

        def stopped(current: records.JobRecord) -> None:
            if not current.ended:
                current.finish(
                    "Stopped",
                    "Stopped",
                    "The job was stopped",
                    time.time(),
                    reason="Stopped on request",
                )

        records.jobs.modify(name, stopped)

    def download_output(self, name: str, dest: Path) -> Path | None:
        spec = self._spec(name)
        if not uri_exists(spec.output_uri):
            return None
        with tempfile.TemporaryDirectory(prefix="fedsage-output-") as tmp:
            extract_safely(fetch_uri(spec.output_uri, Path(tmp) / "output.tar.gz"), dest)
        return dest

    def delete_channel_data(self, job_name: str) -> int:
        """Remove the training data uploaded for the job (``cleanup_resources``)."""
        spec = self._spec(job_name)
        removed = 0
        for channel in spec.channels.values():
            uri = parse_s3_uri(str(channel["uri"]))
            if uri.key.startswith(spec.data_prefix):
                removed += self.store.delete_prefix(uri.key)
        return removed

    def _spec(self, job_name: str) -> JobSpec:
        self._job(job_name)
        return JobSpec.from_file(records.job_dir(job_name) / "spec.json")

    def _completed_spec(self, job_name: str) -> JobSpec:
        self.completed_job(job_name)
        return JobSpec.from_file(records.job_dir(job_name) / "spec.json")

    # -- endpoints -------------------------------------------------------------

    def deploy(
        self,
        job_name: str,
        *,
        initial_instance_count: int,
        instance_type: str,
        endpoint_name: str | None,
        framework_version: str | None = None,
    ) -> str:
        from ..serving import endpoints

        spec = self._completed_spec(job_name)
        runtime = spec.get_runtime()
        if framework_version is not None and framework_version != spec.framework_version:
            raise ConfigurationError(
                f"the framework_version parameter of deploy is {framework_version!r}, but job "
                f"{job_name} was trained with {spec.framework_version!r}; a model must be "
                "served by the runtime that trained it, so leave framework_version out"
            )
        name = endpoint_name or name_from_base(spec.base_job_name)
        with tempfile.TemporaryDirectory(prefix="fedsage-deploy-") as tmp:
            inputs = self._serving_inputs(spec, Path(tmp))
            endpoints.create_endpoint(
                name,
                model_tar=inputs.model_tar,
                code_tar=inputs.code_tar,
                program=inputs.program,
                runtime=runtime,
                instance_count=initial_instance_count,
                env={**inputs.env, "SAGEMAKER_REGION": self.region},
            )
        logger.info("endpoint %s serves job %s (%s)", name, job_name, instance_type)
        return name

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        from ..serving import endpoints

        return endpoints.describe_endpoint(name)

    def list_endpoints(self) -> list[dict[str, Any]]:
        from ..serving import endpoints

        return endpoints.list_endpoints()

    def list_warm_parents(self) -> list[dict[str, Any]]:
        from ..serving import warm

        return warm.list_warm_parents()

    def endpoint_logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        from ..serving import endpoints

        return follow_file(endpoints.endpoint_log(name), follow=follow)

    def invoke_endpoint(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        from ..serving import endpoints

        answer = endpoints.invoke_endpoint(endpoint_name, body, content_type, accept)
        return answer.body, answer.content_type

    def delete_endpoint(self, endpoint_name: str) -> None:
        from ..serving import endpoints

        endpoints.delete_endpoint(endpoint_name)

    # -- batch transform ---------------------------------------------------------

    def transformer(self, job_name: str, **settings: Any) -> Any:
        """A local Batch Transform ``Transformer`` serving the model of ``job_name``.

        The model is fetched anew into each job's scratch folder, so the transformer
        outlives nothing it depends on.  ``role``, ``vpc_config_override`` and
        ``enable_network_isolation`` mean nothing on this machine and are dropped.
        """
        from ..scoring.transformer import ModelFiles, ModelSource, Transformer

        spec = self._completed_spec(job_name)
        for unused in ("role", "vpc_config_override", "enable_network_isolation"):
            settings.pop(unused, None)

        def fetch(scratch: Path) -> ModelFiles:
            inputs = self._serving_inputs(spec, scratch)
            return ModelFiles(inputs.model_tar, inputs.code_tar, inputs.program, dict(inputs.env))

        model_env: dict[str, str] = {}
        if spec.algorithm is None:  # what the SDK's SKLearn model sends as its Environment
            model_env = {
                "SAGEMAKER_PROGRAM": spec.program,
                "SAGEMAKER_SUBMIT_DIRECTORY": spec.submit_directory,
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": self.region,
            }
        source = ModelSource(
            # As the SDK's estimator: a new name from the base job name, when none is given.
            model_name=settings.get("model_name") or name_from_base(spec.base_job_name),
            runtime=spec.get_runtime(),
            region=self.region,
            model_env=model_env,
            fetch=fetch,
            default_output=self.store.uri(self.prefix)
            if self.prefix
            else f"s3://{self.store.bucket}",
            base_job_name=spec.base_job_name,
        )
        settings["model_name"] = source.model_name
        return Transformer.create(source, **settings)

    # -- batch scoring -------------------------------------------------------------

    def batch_transform(self, model: str, pending: PendingRequest) -> ScoringSummary:
        from ..scoring import engine, model_server
        from ..serving import endpoints

        began = time.monotonic()
        with contextlib.ExitStack() as stack:
            start: model_server.BackgroundStart | None = None
            client: Any
            if records.jobs.find(model) is None:
                if endpoints.endpoints.find(model) is None:
                    raise ConfigurationError(
                        f"there is no local training job or endpoint named {model!r}; list "
                        "them with: fedsage jobs list / fedsage endpoints list"
                    )
                client = stack.enter_context(model_server.endpoint_client(model))
                label = f"endpoint {model}"
                handler_problem = _endpoint_input_handler(model)
            else:
                spec = self._completed_spec(model)
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="fedsage-score-"))
                inputs = self._serving_inputs(spec, Path(scratch))
                handler_problem = _job_input_handler(spec, inputs)
                # The server starts in a thread while the input is opened and read ahead;
                # leaving the block waits for the start and deletes the endpoint.
                start = stack.enter_context(
                    model_server.BackgroundStart(
                        model_tar=inputs.model_tar,
                        code_tar=inputs.code_tar,
                        program=inputs.program,
                        runtime=spec.get_runtime(),
                        env={**inputs.env, "SAGEMAKER_REGION": self.region},
                        workers=pending.workers,
                        max_body=pending.plan.max_payload,
                        name_hint=model,
                    )
                )
                client = start.client
                label = f"job {model}"
            request = stack.enter_context(pending.open())
            _choose_content_type(request, handler_problem)
            summary = engine.score(
                client,
                request.source,
                request.target,
                request.plan,
                workers=pending.workers,
                progress=request.progress,
                model=label,
            )
        summary.startup_seconds = start.seconds if start is not None else 0.0
        summary.seconds = time.monotonic() - began
        return summary

    # -- Kyma --------------------------------------------------------------------

    def kyma_inputs(self, job_name: str, scratch: Path) -> KymaInputs:
        return self._serving_inputs(self._completed_spec(job_name), scratch)

    def _serving_inputs(self, spec: JobSpec, scratch: Path) -> KymaInputs:
        """The model, the code that serves it, its entry script and its extra variables."""
        model_tar = fetch_uri(spec.model_uri, scratch / "model.tar.gz")
        if spec.algorithm is not None:  # served by fedsage's handlers for the algorithm
            return KymaInputs(
                model_tar=model_tar,
                code_tar=builtin_xgb.pack_serving_code(scratch / "sourcedir.tar.gz"),
                program=builtin_xgb.SERVING_PROGRAM,
                framework_version=spec.framework_version,
                framework=spec.framework,
                env=builtin_xgb.serving_env(),
            )
        return KymaInputs(
            model_tar=model_tar,
            code_tar=fetch_uri(spec.submit_directory, scratch / "sourcedir.tar.gz"),
            program=spec.program,
            framework_version=spec.framework_version,
            framework=spec.framework,
        )

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
        from ..kyma import local as kyma_local

        return kyma_local.deploy(
            name=name,
            model_tar=inputs.model_tar,
            code_tar=inputs.code_tar,
            program=inputs.program,
            # Local replicas run in the runtime that trained the model.
            runtime=self._spec(job_name).get_runtime(),
            replicas=replicas,
            job_name=job_name,
            progress=progress,
            env=inputs.env,
        )


def _runner_env() -> dict[str, str]:
    """The job runner's environment: this home, and an explicit import path.

    The runner starts with ``python -S`` (no ``site``, no ``.pth`` processing), which
    halves its start-up; the import path names fedsage's folder and this interpreter's
    site-packages instead.
    """
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = sysconfig.get_paths()
    import_path = dict.fromkeys([package_parent, paths["purelib"], paths["platlib"]])
    return {
        **os.environ,
        "FEDSAGE_HOME": str(fedsage_home()),
        "PYTHONPATH": os.pathsep.join(import_path),
    }


def _reap(name: str) -> None:
    """Collect the exit status of a finished runner this process started, if it is gone.

    A runner that is still exiting is left for :func:`_reap_all` at interpreter exit,
    so waiting for a job never waits for the runner's own teardown.
    """
    process = _RUNNERS.get(name)
    if process is not None and process.poll() is not None:
        _RUNNERS.pop(name, None)


@atexit.register
def _reap_all() -> None:
    for process in list(_RUNNERS.values()):
        if process.poll() is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue


def _remove_tree(path: Path) -> None:
    import shutil

    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot remove {path}: {exc}") from exc


# -- batch scoring: which request type when the caller named none -------------------------


def _job_input_handler(spec: JobSpec, inputs: KymaInputs) -> str | None:
    """Why a job's model may not decode requests with the image's default ``input_fn``."""
    from ..scoring import content

    return content.default_input_handler(
        inputs.code_tar, inputs.program, spec.framework, builtin=spec.algorithm is not None
    )


def _endpoint_input_handler(name: str) -> str | None:
    """The same for a running endpoint: its entry point in its folder, its runtime's image."""
    from ..scoring import content
    from ..serving import endpoints

    record = endpoints.endpoints.get(name)
    if not record.dir:
        return "the endpoint's folder is not known"
    folder = Path(record.dir)
    code = folder / "code"
    if not code.is_dir():  # as create_endpoint: the code inside the model
        code = folder / "model" / "code"
        code = code if code.is_dir() else folder / "model"
    framework = (record.runtime or {}).get("Framework", "scikit-learn")
    builtin = record.program == builtin_xgb.SERVING_PROGRAM
    return content.default_input_handler(code, record.program, framework, builtin=builtin)


def _choose_content_type(request: ScoringRequest, handler_problem: str | None) -> None:
    """Pick npy for a model that keeps the default ``input_fn`` when the caller named no
    content type (an explicit one always wins); say which and why on the progress line."""
    from ..scoring import content, engine
    from ..scoring.progress import RowsProgress

    plan = request.plan
    if not plan.content_type_given:
        _, features = engine.select_columns(request.source.schema, plan)
        choice = content.choose(request.source.schema, features, handler_problem)
        plan.content_type = choice.content_type
        plan.content_type_reason = choice.reason
        plan.npy_like_csv = choice.like_csv
    if isinstance(request.progress, RowsProgress):
        how = "given" if plan.content_type_given else "chosen for the model: see the summary"
        request.progress.note = f"{plan.content_type}, {how}"
