"""The local backend: a folder-tree object store, job runner processes, local endpoints."""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from .._archive import pack_dir
from .._home import fedsage_home, registry
from ..channels import upload_channel
from ..errors import ConfigurationError, StorageError, TrainingError
from ..storage import LocalStore, parse_s3_uri
from ..storage.local import store_root
from ..training import contract, records
from ..training.handle import TrainingJobHandle
from ..training.spec import JobSpec, name_from_base
from .base import Backend, KymaInputs, TrainingRequest

__all__ = ["DEFAULT_LOCAL_BUCKET", "LOCAL_REGION", "LocalBackend", "store_root"]

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_BUCKET = "fedsage-local"
LOCAL_REGION = "us-east-1"
_POLL_SECONDS = 0.02
_STOP_TIMEOUT = 15.0

# Runner processes started by this process, kept so they are reaped (no zombies).
_RUNNERS: dict[str, subprocess.Popen[bytes]] = {}


def _check_versions(runtime_packages: dict[str, str], framework_version: str) -> str | None:
    """A warning when the scikit-learn a job really uses differs from its image's."""
    from ..runtimes.catalog import SUPPORTED_VERSIONS, load_spec

    actual = runtime_packages.get("scikit-learn")
    images = {v: load_spec(v).exact.packages.get("scikit-learn") for v in SUPPORTED_VERSIONS}
    expected = images.get(framework_version)
    if expected is None:
        if actual in images.values():
            return None
        return (
            f"framework_version={framework_version!r} runs on this environment's "
            f"scikit-learn {actual}, which matches no SageMaker scikit-learn image exactly; "
            "a model trained here may not load on SageMaker"
        )
    if actual != expected:
        return (
            f"the {framework_version} image has scikit-learn {expected}, but this job uses "
            f"{actual}; results and pickles may differ on SageMaker"
        )
    return None


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

    def __init__(self, bucket_name: str | None, prefix: str) -> None:
        self.store = LocalStore(store_root(), bucket_name or DEFAULT_LOCAL_BUCKET)
        self.prefix = prefix
        self.region = LOCAL_REGION

    def __repr__(self) -> str:
        return f"LocalBackend(bucket={self.store.bucket!r}, prefix={self.prefix!r})"

    # -- training ------------------------------------------------------------

    def _new_job_name(self, base: str) -> str:
        reg = registry()
        for _ in range(50):
            name = name_from_base(base)
            if reg.get(records.KIND, name) is None and not records.job_dir(name).exists():
                return name
            time.sleep(0.002)
        raise ConfigurationError(f"could not find a free job name for base {base!r}")

    def _upload_source(self, request: TrainingRequest, job_name: str) -> tuple[str, str]:
        """Pack and store ``sourcedir.tar.gz``; return (its URI, the program name)."""
        program = request.entry_point.name
        if isinstance(request.source_dir, str):  # an s3:// URI of a sourcedir.tar.gz
            return request.source_dir, program
        key = f"{self.prefix}/{job_name}/source/sourcedir.tar.gz".lstrip("/")
        with tempfile.TemporaryDirectory(prefix="fedsage-source-") as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            if request.source_dir is None:
                pack_dir(request.entry_point.parent, archive, only=[Path(program)])
            else:
                pack_dir(request.source_dir, archive)
            return self.store.put_file(key, archive), program

    def train(self, request: TrainingRequest) -> TrainingJobHandle:
        from ..runtimes import resolve_runtime

        runtime = resolve_runtime(request.framework_version)
        job_name = self._new_job_name(request.base_job_name)
        folder = records.job_dir(job_name)
        folder.mkdir(parents=True)
        data_prefix = f"{self.prefix}/{job_name}/data".lstrip("/")
        try:
            channels = {
                plan.name: {
                    "uri": upload_channel(plan, self.store, data_prefix),
                    "content_type": plan.content_type,
                }
                for plan in request.channels
            }
            submit_directory, program = self._upload_source(request, job_name)
        except BaseException:
            self.store.delete_prefix(f"{self.prefix}/{job_name}/".lstrip("/"))
            _remove_tree(folder)
            raise
        hyperparameters = {
            **request.hyperparameters,
            **contract.reserved_hyperparameters(
                program=program,
                submit_directory=submit_directory,
                job_name=job_name,
                region=self.region,
            ),
        }
        output_path = self.store.uri(self.prefix) if self.prefix else f"s3://{self.store.bucket}"
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
            runtime=runtime.to_dict(),
        )
        (folder / "spec.json").write_text(spec.to_json(), encoding="utf-8")
        record = records.new_record(spec)
        warning = _check_versions(runtime.packages, request.framework_version)
        if runtime.approximate:
            warning = (
                f"framework_version={request.framework_version!r} runs on an approximate "
                f"runtime (Python {runtime.python_version}, scikit-learn "
                f"{runtime.packages.get('scikit-learn')}); see docs/runtimes.md"
            )
        if warning:
            warnings.warn(warning, stacklevel=3)
            record["Fedsage"]["Warnings"].append(warning)
        reg = registry()
        reg.add(records.KIND, job_name, record)
        with open(folder / "runner.err", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-S", "-m", "fedsage.training.runner", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=_runner_env(),
                start_new_session=True,
            )
        _RUNNERS[job_name] = process
        fedsage_info = {**record["Fedsage"], "Pid": process.pid}
        reg.update(records.KIND, job_name, Fedsage=fedsage_info)
        logger.info("started local training job %s (runner pid %d)", job_name, process.pid)
        return TrainingJobHandle(
            self,
            job_name,
            base_job_name=request.base_job_name,
            framework_version=request.framework_version,
            entry_point=program,
            source_dir=str(request.source_dir) if request.source_dir else None,
            instance_type=request.instance_type,
            output_path=output_path,
            hyperparameters=hyperparameters,
        )

    def _record(self, name: str) -> dict[str, Any]:
        reg = registry()
        record = reg.get(records.KIND, name)
        if record is None:
            raise ConfigurationError(
                f"no local training job named {name!r}; list jobs with: fedsage jobs list"
            )
        process = _RUNNERS.get(name)
        if process is not None and process.poll() is not None:
            _RUNNERS.pop(name, None)
        return records.refresh_stale(reg, record)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        return records.describe_record(self._record(name))

    def list_training_jobs(self) -> list[dict[str, Any]]:
        reg = registry()
        return [
            records.describe_record(records.refresh_stale(reg, r)) for r in reg.list(records.KIND)
        ]

    def training_log(self, name: str) -> list[str]:
        self._record(name)
        lines, _ = records.tail_log(records.job_dir(name) / "log.txt")
        return lines

    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]:
        show = logs not in ("None", False, None)
        log_path = records.job_dir(name) / "log.txt"
        offset = 0
        last_secondary = None
        try:
            while True:
                record = self._record(name)
                if show:
                    secondary = record.get("SecondaryStatus")
                    if secondary != last_secondary:
                        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                        message = (record.get("SecondaryStatusTransitions") or [{}])[-1].get(
                            "StatusMessage", ""
                        )
                        print(f"{stamp} {secondary} - {message}", flush=True)
                        last_secondary = secondary
                    lines, offset = records.tail_log(log_path, offset)
                    for line in lines:
                        print(line, flush=True)
                if record["TrainingJobStatus"] in records.TERMINAL:
                    break
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            self.stop_training_job(name)
            raise
        _reap(name)
        if show:
            lines, offset = records.tail_log(log_path, offset)
            for line in lines:
                print(line, flush=True)
        status = record["TrainingJobStatus"]
        if status == "Failed" and raise_on_failure:
            raise TrainingError(name, status, record.get("FailureReason", ""))
        if status == "Stopped":
            logger.warning("training job %s was stopped", name)
        return records.describe_record(record)

    def stop_training_job(self, name: str) -> None:
        record = self._record(name)
        if record["TrainingJobStatus"] in records.TERMINAL:
            return
        reg = registry()
        reg.update(records.KIND, name, TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
        pid = record.get("Fedsage", {}).get("Pid")
        if pid:
            records.stop_runner(pid)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            process = _RUNNERS.get(name)
            if process is not None:
                process.poll()
            current = reg.get(records.KIND, name) or {}
            if current.get("TrainingJobStatus") in records.TERMINAL:
                _reap(name)
                return
            if not records.pid_alive(pid):
                break
            time.sleep(_POLL_SECONDS)
        reg.update(
            records.KIND,
            name,
            TrainingJobStatus="Stopped",
            SecondaryStatus="Stopped",
            FailureReason="Stopped on request",
            TrainingEndTime=time.time(),
        )

    def download_output(self, name: str, dest: Path) -> Path | None:
        spec = JobSpec.from_file(records.job_dir(name) / "spec.json")
        return self.store.extract(spec.output_key, dest)

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
            model_tar = self.store.download(spec.model_key, Path(tmp) / "model.tar.gz")
            source = parse_s3_uri(spec.submit_directory)
            code_tar = self.store.download(source.key, Path(tmp) / "sourcedir.tar.gz")
            endpoints.create_endpoint(
                name,
                model_tar=model_tar,
                code_tar=code_tar,
                program=spec.program,
                runtime=runtime,
                instance_count=initial_instance_count,
                env={"SAGEMAKER_REGION": self.region},
            )
        logger.info("endpoint %s serves job %s (%s)", name, job_name, instance_type)
        return name

    def predict(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        from ..serving import endpoints

        answer = endpoints.invoke_endpoint(endpoint_name, body, content_type, accept)
        return answer.body, answer.content_type

    def delete_endpoint(self, endpoint_name: str) -> None:
        from ..serving import endpoints

        endpoints.delete_endpoint(endpoint_name)

    def list_endpoints(self) -> list[dict[str, Any]]:
        from ..serving import endpoints

        return endpoints.list_endpoints()

    # -- Kyma --------------------------------------------------------------------

    def _completed_spec(self, job_name: str) -> JobSpec:
        self.completed_job(job_name)
        return JobSpec.from_file(records.job_dir(job_name) / "spec.json")

    def kyma_inputs(self, job_name: str, scratch: Path) -> KymaInputs:
        spec = self._completed_spec(job_name)
        source = parse_s3_uri(spec.submit_directory)
        return KymaInputs(
            model_tar=self.store.download(spec.model_key, scratch / "model.tar.gz"),
            code_tar=self.store.download(source.key, scratch / "sourcedir.tar.gz"),
            program=spec.program,
            framework_version=spec.framework_version,
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
            runtime=JobSpec.from_file(records.job_dir(job_name) / "spec.json").get_runtime(),
            replicas=replicas,
            job_name=job_name,
            progress=progress,
        )

    def delete_channel_data(self, name: str) -> int:
        """Remove the training data uploaded for job ``name`` (``cleanup_resources``)."""
        spec = JobSpec.from_file(records.job_dir(name) / "spec.json")
        removed = 0
        for channel in spec.channels.values():
            uri = parse_s3_uri(str(channel["uri"]))
            if uri.key.startswith(spec.data_prefix):
                removed += self.store.delete_prefix(uri.key)
        return removed


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
