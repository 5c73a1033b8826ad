"""The local job runner: one detached process per training job.

``python -m fedsage.training.runner JOB_DIR`` reads ``spec.json``, lays out the
``/opt/ml`` tree, runs the user's script under the job's runtime (in a private mount
namespace where ``/opt/ml`` is the job's tree), packs ``model.tar.gz`` and
``output.tar.gz`` into the object store and records every status change in the
registry.  It runs in its own session, so it outlives the notebook that started it.
SIGTERM stops the job: the script's process group is killed and the job is
``Stopped``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Any

from .._archive import extract_safely, pack_dir
from .._process import ProcessIdentity
from ..errors import FedsageError
from ..storage import LocalStore, parse_s3_uri
from ..storage.local import store_root
from . import contract, sandbox
from .records import JobRecord, jobs
from .spec import JobSpec

logger = logging.getLogger(__name__)

_GRACE_SECONDS = 5.0
_TRACEBACK_LINES = 6


class _Stopped(Exception):
    pass


class JobRunner:
    """Runs one job folder to completion; see the module docstring."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.spec = JobSpec.from_file(job_dir / "spec.json")
        self.store = _store_for(self.spec)
        self.root = job_dir / "opt_ml"
        self.log_path = job_dir / "log.txt"
        self.layout = contract.Layout(self.root)
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested = False

    # -- helpers -------------------------------------------------------------

    def _log(self, log: IO[str], message: str) -> None:
        log.write(message.rstrip("\n") + "\n")
        log.flush()

    def _status(self, status: str, message: str) -> None:
        jobs.modify(self.spec.job_name, lambda job: job.move_to(status, message, time.time()))

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise _Stopped

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop_requested = True
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    # -- phases --------------------------------------------------------------

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
            key = uri.key
            base = key if key.endswith("/") or "/" not in key else key.rsplit("/", 1)[0] + "/"
            keys = self.store.list(uri.key)
            for key in keys:
                rel = key[len(base) :] if base else key
                self.store.download(key, Path(self.layout.channel_dir(name)) / rel)
            self._log(log, f"Downloaded {len(keys)} file(s) into channel {name!r} from {uri}")
        source = parse_s3_uri(self.spec.submit_directory)
        with tempfile.TemporaryDirectory(dir=self.job_dir) as tmp:
            archive = self.store.download(source.key, Path(tmp) / "sourcedir.tar.gz")
            extract_safely(archive, Path(self.layout.code_dir))

    def install(self, log: IO[str]) -> list[str]:
        """Return extra PYTHONPATH entries (a cached requirements overlay, if any)."""
        requirements = Path(self.layout.code_dir) / "requirements.txt"
        if not requirements.is_file():
            return []
        from ..runtimes import requirements_overlay

        self._log(log, f"Installing requirements from {requirements.name} into a cached overlay")
        overlay = requirements_overlay(self.spec.get_runtime(), requirements)
        return [str(overlay)]

    def train(self, log: IO[str], extra_path: list[str]) -> int:
        self._status("Training", "Training image download completed. Training in progress.")
        runtime = self.spec.get_runtime()
        staging = self.job_dir / ".sandbox"
        staging.mkdir(exist_ok=True)
        in_sandbox, why = sandbox.sandbox_available(self.root, staging)
        if in_sandbox:
            layout = contract.Layout(contract.CONTAINER_ROOT)
        else:
            layout = self.layout
            message = (
                f"could not give the job a private /opt/ml ({why}); the script sees its "
                f"folders through the SM_* variables under {self.root}, and paths hard-coded "
                "to /opt/ml will not exist"
            )
            self._log(log, f"WARNING: {message}")
            self._warn(message)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
        env.pop("PYTHONPATH", None)
        env.update(runtime.env)
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
        user = contract.split_hyperparameters(
            contract.decode_hyperparameters(self.spec.hyperparameters)
        )[0]
        command = [str(runtime.python), self.spec.program, *contract.to_cmd_args(user)]
        shown = [*command[:2], *contract.to_cmd_args(contract.mask_secrets(user))]
        self._log(log, "Invoking script with the following command:\n")
        self._log(log, " ".join(shown) + "\n")
        self.child = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=None if in_sandbox else str(layout.code_dir),
            preexec_fn=sandbox.sandbox_preexec(self.root, staging) if in_sandbox else None,
            start_new_session=True,
        )
        code = self.child.wait()
        self._check_stop()
        if code != 0:
            failure = Path(self.layout.failure_file)
            if not failure.exists():
                failure.write_text(contract.failure_text(shown, code), encoding="utf-8")
        else:
            Path(self.layout.success_file).touch()
        return code

    def upload(self) -> None:
        self._status("Uploading", "Uploading generated training model")
        with tempfile.TemporaryDirectory(dir=self.job_dir) as tmp:
            model = pack_dir(Path(self.layout.model_dir), Path(tmp) / "model.tar.gz")
            self.store.put_file(self.spec.model_key, model)
            output = pack_dir(Path(self.layout.output_data_dir), Path(tmp) / "output.tar.gz")
            self.store.put_file(self.spec.output_key, output)

    # -- driver --------------------------------------------------------------

    def _warn(self, message: str) -> None:
        jobs.modify(self.spec.job_name, lambda job: job.warnings.append(message))

    def _finish(self, status: str, secondary: str, message: str, reason: str | None) -> None:
        artifacts = self.store.uri(self.spec.model_key) if status == "Completed" else None

        def finish(job: JobRecord) -> None:
            job.finish(
                status, secondary, message, time.time(), reason=reason, model_artifacts=artifacts
            )

        jobs.modify(self.spec.job_name, finish)

    def _failure_reason(self) -> str:
        failure = Path(self.layout.failure_file)
        text = failure.read_text(encoding="utf-8", errors="replace") if failure.exists() else ""
        tail = _traceback_tail(self.log_path)
        if tail and 'ErrorMessage ""' in text:
            text = text.replace('ErrorMessage ""', f'ErrorMessage "{tail}"')
        return "AlgorithmError: " + (text or tail or "the training script failed")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigterm)
        me = ProcessIdentity.current()
        jobs.modify(self.spec.job_name, lambda job: setattr(job, "runner", me))
        with open(self.log_path, "a", encoding="utf-8", buffering=1) as log:
            try:
                self.download(log)
                self._check_stop()
                extra = self.install(log)
                self._check_stop()
                code = self.train(log, extra)
                if code != 0:
                    self._finish("Failed", "Failed", "Training job failed", self._failure_reason())
                    return 1
                self.upload()
                self._finish("Completed", "Completed", "Training job completed", None)
                return 0
            except _Stopped:
                self._log(log, "Training job stopped on request")
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


def _store_for(spec: JobSpec) -> LocalStore:
    return LocalStore(store_root(), spec.bucket)


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
