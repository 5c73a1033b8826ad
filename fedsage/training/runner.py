"""The local job runner: one detached process per training job.

``python -m fedsage.training.runner JOB_DIR`` reads ``spec.json``, builds the job's
runtime if this is its first use, lays out the ``/opt/ml`` tree, runs the user's script
under the runtime (in a private mount namespace where ``/opt/ml`` is the job's tree),
packs ``model.tar.gz`` and ``output.tar.gz`` to the job's output path and records every
status change in the registry.  It runs in its own session, so it outlives the notebook
that started it.  SIGTERM stops the job: the script's process group is killed and the
job is ``Stopped``; so does ``max_run``, as ``MaxRuntimeExceeded``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from .._archive import extract_safely, pack_dir
from .._process import ProcessIdentity
from ..errors import FedsageError
from ..storage import LocalStore, parse_s3_uri
from ..storage.local import fetch_uri, put_uri, store_root
from . import contract, sandbox
from .metrics import METRICS_FILE, MetricScanner, final_metrics, read_points
from .records import JobRecord, jobs
from .settings import EstimatorSettings, local_checkpoint_dir
from .spec import JobSpec

logger = logging.getLogger(__name__)

_GRACE_SECONDS = 5.0
_TRACEBACK_LINES = 6
_MAX_RUNTIME_REASON = (
    "MaxRuntimeExceeded: Training job runtime exceeded MaxRuntimeInSeconds provided"
)


class _Stopped(Exception):
    pass


class _OutOfTime(Exception):
    pass


class JobRunner:
    """Runs one job folder to completion; see the module docstring."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.spec = JobSpec.from_file(job_dir / "spec.json")
        self.settings = EstimatorSettings.from_dict(self.spec.settings)
        self.root = job_dir / "opt_ml"
        self.log_path = job_dir / "log.txt"
        self.layout = contract.Layout(self.root)
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested = False
        self.out_of_time = False
        self.deadline = time.monotonic() + self.settings.max_run

    # -- helpers -------------------------------------------------------------

    def _log(self, log: IO[str], message: str) -> None:
        log.write(message.rstrip("\n") + "\n")
        log.flush()

    def _status(self, status: str, message: str) -> None:
        jobs.modify(self.spec.job_name, lambda job: job.move_to(status, message, time.time()))

    def _check_stop(self) -> None:
        if self.out_of_time or time.monotonic() > self.deadline:
            raise _OutOfTime
        if self.stop_requested:
            raise _Stopped

    def _kill_child(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop_requested = True
        self._kill_child()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        self.out_of_time = True
        self._kill_child()

    # -- phases --------------------------------------------------------------

    def prepare_runtime(self, log: IO[str]) -> None:
        """Build the runtime in the job's own process when the notebook did not have it."""
        if self.spec.runtime:
            return
        from ..runtimes import resolve_runtime

        version = self.spec.framework_version
        self._log(log, f"Preparing the framework runtime {version} (first use: building it)")
        last = [""]

        def progress(message: str, fraction: float | None) -> None:
            if message != last[0]:
                last[0] = message
                self._log(log, f"  {message}")
                jobs.modify(self.spec.job_name, lambda job: job.set_progress(message, fraction))

        runtime = resolve_runtime(version, framework=self.spec.framework, progress=progress)
        self.spec.runtime = runtime.to_dict()
        (self.job_dir / "spec.json").write_text(self.spec.to_json(), encoding="utf-8")
        from ..runtimes.check import runtime_warning

        warning = runtime_warning(runtime, version)

        def ready(job: JobRecord) -> None:
            job.runtime = dict(self.spec.runtime)
            job.set_progress(None, None)
            if warning:
                job.warnings.append(warning)

        jobs.modify(self.spec.job_name, ready)
        if warning:
            self._log(log, f"WARNING: {warning}")

    def download(self, log: IO[str]) -> None:
        self._status("Downloading", "Downloading input data and code")
        self.layout.create(sorted(self.spec.channels))
        contract.write_config_files(
            self.layout,
            self.spec.hyperparameters,
            {n: c["content_type"] for n, c in self.spec.channels.items()},
            self.spec.instance_type,
        )
        for name, channel in sorted(self.spec.channels.items()):
            uri = parse_s3_uri(str(channel["uri"]))
            store = LocalStore(store_root(), uri.bucket)
            key = uri.key
            base = key if key.endswith("/") or "/" not in key else key.rsplit("/", 1)[0] + "/"
            keys = store.list(uri.key)
            for key in keys:
                rel = key[len(base) :] if base else key
                store.download(key, Path(self.layout.channel_dir(name)) / rel)
            self._log(log, f"Downloaded {len(keys)} file(s) into channel {name!r} from {uri}")
        if self.spec.submit_directory:  # a built-in algorithm brings no code
            with tempfile.TemporaryDirectory(dir=self.job_dir) as tmp:
                archive = fetch_uri(self.spec.submit_directory, Path(tmp) / "sourcedir.tar.gz")
                extract_safely(archive, Path(self.layout.code_dir))
        self._sync_checkpoints(log, download=True)

    def install(self, log: IO[str]) -> list[str]:
        """Return extra PYTHONPATH entries (a cached requirements overlay, if any)."""
        requirements = Path(self.layout.code_dir) / "requirements.txt"
        if not requirements.is_file():
            return []
        from ..runtimes import requirements_overlay

        self._log(log, f"Installing requirements from {requirements.name} into a cached overlay")
        overlay = requirements_overlay(self.spec.get_runtime(), requirements)
        return [str(overlay)]

    def _checkpoint_folder(self) -> Path | None:
        inside = local_checkpoint_dir(self.settings)
        if inside is None:
            return None
        return self.root / inside.relative_to(contract.CONTAINER_ROOT)

    def _sync_checkpoints(self, log: IO[str], *, download: bool) -> None:
        """Copy ``checkpoint_s3_uri`` into the job before training, and back after."""
        folder = self._checkpoint_folder()
        if folder is None or self.settings.checkpoint_s3_uri is None:
            return
        uri = parse_s3_uri(self.settings.checkpoint_s3_uri, "checkpoint_s3_uri")
        store = LocalStore(store_root(), uri.bucket)
        prefix = uri.key.rstrip("/") + "/" if uri.key else ""
        if download:
            folder.mkdir(parents=True, exist_ok=True)
            keys = store.list(prefix)
            for key in keys:
                store.download(key, folder / key[len(prefix) :])
            self._log(log, f"Restored {len(keys)} checkpoint file(s) from {uri}")
            return
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()] if folder.is_dir() else []
        for path in files:
            store.put_file(prefix + path.relative_to(folder).as_posix(), path)
        self._log(log, f"Saved {len(files)} checkpoint file(s) to {uri}")

    def _environment(self, layout: contract.Layout, extra_path: list[str]) -> dict[str, str]:
        runtime = self.spec.get_runtime()
        env = contract.host_env(os.environ, Path(runtime.python))
        env.update(runtime.env)
        env.update(self.settings.environment)
        env.update(
            contract.training_env(
                layout,
                hyperparameters=self.spec.hyperparameters,
                channels={n: c["content_type"] for n, c in self.spec.channels.items()},
                instance_type=self.spec.instance_type,
                job_name=self.spec.job_name,
                region=self.spec.region,
                toolkit_48=self.spec.framework_version not in ("0.23-1", "1.0-1"),
            )
        )
        env["PYTHONPATH"] = os.pathsep.join([str(layout.code_dir), *extra_path])
        return env

    def train(self, log: IO[str], extra_path: list[str]) -> int:
        self._status("Training", "Training image download completed. Training in progress.")
        runtime = self.spec.get_runtime()
        staging = self.job_dir / ".sandbox"
        staging.mkdir(exist_ok=True)
        isolate = self.settings.enable_network_isolation
        in_sandbox, why = sandbox.sandbox_available(self.root, staging, isolate_network=isolate)
        if in_sandbox:
            layout = contract.Layout(contract.CONTAINER_ROOT)
        else:
            layout = self.layout
            message = (
                f"could not give the job a private /opt/ml ({why}); the script sees its "
                f"folders through the SM_* variables under {self.root}, and paths hard-coded "
                "to /opt/ml will not exist"
            )
            if isolate:
                message += "; enable_network_isolation is not enforced either"
            self._log(log, f"WARNING: {message}")
            self._warn(message)
        env = self._environment(layout, extra_path)
        if self.spec.algorithm:  # reads hyperparameters.json itself, as the image does
            user: dict[str, Any] = {}
        else:
            user = contract.split_hyperparameters(
                contract.decode_hyperparameters(self.spec.hyperparameters)
            )[0]
        command = [str(runtime.python), self.spec.program, *contract.to_cmd_args(user)]
        shown = [*command[:2], *contract.to_cmd_args(contract.mask_secrets(user))]
        self._log(log, "Invoking script with the following command:\n")
        self._log(log, " ".join(shown) + "\n")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime
        self.child = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=None if in_sandbox else str(layout.code_dir),
            preexec_fn=(
                sandbox.sandbox_preexec(self.root, staging, isolate_network=isolate)
                if in_sandbox
                else None
            ),
            start_new_session=True,
        )
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, remaining)
        pump = threading.Thread(target=self._pump, args=(self.child.stdout, log), daemon=True)
        pump.start()
        try:
            code = self.child.wait()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        # A script may leave a daemon holding the pipe: do not wait for it forever.
        pump.join(timeout=_GRACE_SECONDS)
        self._check_stop()
        if code != 0:
            failure = Path(self.layout.failure_file)
            if not failure.exists():
                failure.write_text(contract.failure_text(shown, code), encoding="utf-8")
        else:
            Path(self.layout.success_file).touch()
        return code

    def _pump(self, pipe: IO[bytes] | None, log: IO[str]) -> None:
        """Copy the script's output to the log as it comes, and pick the metrics out of it."""
        if pipe is None:
            return
        scanner = MetricScanner(self.settings.metric_definitions)
        pending = b""
        with open(self.job_dir / METRICS_FILE, "a", encoding="utf-8") as metrics:
            while chunk := os.read(pipe.fileno(), 65536):
                log.write(chunk.decode("utf-8", "replace"))
                log.flush()
                if not scanner:
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                now = time.time()
                for line in lines:
                    for point in scanner.scan(line.decode("utf-8", "replace"), now):
                        metrics.write(json.dumps(point) + "\n")
                metrics.flush()
            if scanner and pending:
                for point in scanner.scan(pending.decode("utf-8", "replace"), time.time()):
                    metrics.write(json.dumps(point) + "\n")
        pipe.close()

    def upload(self) -> bool:
        """Pack and store the artifacts; False when the job never got to make any."""
        if not Path(self.layout.model_dir).is_dir():
            return False
        self._status("Uploading", "Uploading generated training model")
        with tempfile.TemporaryDirectory(dir=self.job_dir) as tmp:
            model = pack_dir(Path(self.layout.model_dir), Path(tmp) / "model.tar.gz")
            put_uri(self.spec.model_uri, model)
            output = pack_dir(Path(self.layout.output_data_dir), Path(tmp) / "output.tar.gz")
            put_uri(self.spec.output_uri, output)
        return True

    # -- driver --------------------------------------------------------------

    def _warn(self, message: str) -> None:
        jobs.modify(self.spec.job_name, lambda job: job.warnings.append(message))

    def _finish(
        self,
        status: str,
        secondary: str,
        message: str,
        reason: str | None,
        *,
        uploaded: bool = False,
    ) -> None:
        artifacts = self.spec.model_uri if uploaded else None
        final = final_metrics(read_points(self.job_dir / METRICS_FILE))

        def finish(job: JobRecord) -> None:
            job.finish(
                status, secondary, message, time.time(), reason=reason, model_artifacts=artifacts
            )
            job.final_metrics = [{**m, "Timestamp": m["Timestamp"].timestamp()} for m in final]

        jobs.modify(self.spec.job_name, finish)

    def _failure_reason(self) -> str:
        failure = Path(self.layout.failure_file)
        text = failure.read_text(encoding="utf-8", errors="replace") if failure.exists() else ""
        tail = _traceback_tail(self.log_path)
        if tail and 'ErrorMessage ""' in text:
            text = text.replace('ErrorMessage ""', f'ErrorMessage "{tail}"')
        return "AlgorithmError: " + (text or tail or "the training script failed")

    def _after_training(self, log: IO[str]) -> None:
        """What happens whatever the outcome: checkpoints go back to their S3 URI."""
        try:
            self._sync_checkpoints(log, download=False)
        except (FedsageError, OSError) as exc:
            self._log(log, f"WARNING: could not save the checkpoints: {exc}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigterm)
        me = ProcessIdentity.current()
        jobs.modify(self.spec.job_name, lambda job: setattr(job, "runner", me))
        with open(self.log_path, "a", encoding="utf-8", buffering=1) as log:
            try:
                self.prepare_runtime(log)
                self._check_stop()
                self.download(log)
                self._check_stop()
                extra = self.install(log)
                self._check_stop()
                code = self.train(log, extra)
                self._after_training(log)
                if code != 0:
                    self._finish("Failed", "Failed", "Training job failed", self._failure_reason())
                    return 1
                self.upload()
                self._finish(
                    "Completed", "Completed", "Training job completed", None, uploaded=True
                )
                return 0
            except _OutOfTime:
                self._log(log, f"Training job ran past max_run ({self.settings.max_run} s)")
                self._after_training(log)
                # SageMaker keeps what the script saved before it was stopped.
                uploaded = self.upload()
                self._finish(
                    "Stopped", "MaxRuntimeExceeded", "Job exceeded the maximum allowed runtime",
                    _MAX_RUNTIME_REASON, uploaded=uploaded,
                )
                return 1
            except _Stopped:
                self._log(log, "Training job stopped on request")
                self._after_training(log)
                self._finish("Stopped", "Stopped", "The job was stopped", "Stopped on request")
                return 1
            except FedsageError as exc:
                self._log(log, f"ERROR: {exc}")
                self._finish("Failed", "Failed", "Training job failed", f"ClientError: {exc}")
                return 1
            except Exception as exc:
                self._log(log, "".join(traceback.format_exc()))
                reason = f"InternalServerError: {type(exc).__name__}: {exc}"
                self._finish("Failed", "Failed", "Training job failed", reason)
                return 1


def _traceback_tail(log_path: Path) -> str:
    """The last lines of the last Python traceback in the log, if any."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback (most recent call last)"):
            block = [line for line in lines[index:] if line.strip()]
            return "\n".join(block[-_TRACEBACK_LINES:]).replace('"', "'")
    return ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fedsage.training.runner JOB_DIR", file=sys.stderr)
        return 2
    return JobRunner(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
