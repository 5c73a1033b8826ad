"""The model-server supervisor: one listening socket, N worker processes, replaced when they die.

The supervisor runs in fedsage's own environment.  It binds the socket once (127.0.0.1
unless asked otherwise; port 0 picks a free port), starts each worker as
``<runtime python> fedsage_worker.py --fd N --model-dir DIR`` with the socket passed
through ``pass_fds``, so all workers accept on the same socket.  A worker that exits is
replaced (with a back-off, and the supervisor gives up when workers keep dying at
start-up).  SIGTERM or SIGINT only set a flag; the main loop then asks every worker to
drain and stops the stragglers by PID.

``python -m fedsage.serving.supervisor --config FILE`` runs a supervisor from a JSON
:class:`ServerConfig`; that is how a detached local endpoint is started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WORKER_PATH", "ServerConfig", "Supervisor", "serve", "worker_env"]

log = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).resolve().parent / "_worker" / "fedsage_worker.py"
DEFAULT_MAX_BODY = 6 * 1024 * 1024
_SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
_CRASH_WINDOW = 3.0  # a worker dying sooner than this after start counts as a crash
_MAX_CRASHES = 5


@dataclass
class ServerConfig:
    """Everything a model server needs; JSON-serialisable so a detached server can read it.

    Attributes
    ----------
    model_dir : str
        The extracted model (``/opt/ml/model``).
    python : str
        The interpreter workers run under (a runtime's ``python``).
    code_dir : str or None
        Where the entry point lives (``SAGEMAKER_SUBMIT_DIRECTORY``).
    program : str or None
        The entry point file (``SAGEMAKER_PROGRAM``), e.g. ``inference.py``.
    host, port : str, int
        Where to listen; port 0 picks a free port.
    workers : int or None
        Worker processes; ``None`` means one per core.
    timeout : float
        Per-request timeout in seconds.
    max_body : int
        Largest accepted request body in bytes (413 above).
    debug : bool
        Tracebacks in 500 bodies and debug logging.
    env : dict
        Extra environment for the workers (the runtime's, then the user's).
    state_file : str or None
        Where the supervisor writes its PID, port and worker PIDs (JSON, atomically).
    """

    model_dir: str
    python: str = sys.executable
    code_dir: str | None = None
    program: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    workers: int | None = None
    timeout: float = 60.0
    max_body: int = DEFAULT_MAX_BODY
    debug: bool = False
    env: dict[str, str] = field(default_factory=dict)
    state_file: str | None = None

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Build from :meth:`to_json` output."""
        return cls(**json.loads(text))


def worker_env(config: ServerConfig, workers: int) -> dict[str, str]:
    """The environment of a worker: ours minus Python path variables, plus serving settings.

    Parameters
    ----------
    config : ServerConfig
        The server settings.
    workers : int
        The number of workers (``SAGEMAKER_MODEL_SERVER_WORKERS``).

    Returns
    -------
    dict
        Variables for ``subprocess.Popen(env=...)``.
    """
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        {
            "SAGEMAKER_PROGRAM": config.program or "",
            "SAGEMAKER_SUBMIT_DIRECTORY": config.code_dir or config.model_dir,
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(config.timeout),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            "SAGEMAKER_BIND_TO_PORT": str(config.port),
            "SM_MODEL_DIR": config.model_dir,
            "FEDSAGE_MAX_BODY": str(config.max_body),
            "FEDSAGE_DEBUG": "1" if config.debug else "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(config.env)
    return env


class Supervisor:
    """Runs and watches the workers of one model server.

    Parameters
    ----------
    config : ServerConfig
        What to serve and how.

    Attributes
    ----------
    started : bool
        True once the socket is bound and the first workers are spawned.
    should_exit : bool
        Set by a signal (or :meth:`request_exit`); the main loop then shuts down.
    port : int
        The bound port (known after :meth:`startup`).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self.started = False
        self.should_exit = False
        self.exit_code = 0
        self.port = config.port
        self.sock: socket.socket | None = None
        self._crashes = 0
        n = config.workers if config.workers else (os.cpu_count() or 1)
        self.n_workers = max(1, int(n))

    # ---- lifecycle
    def startup(self) -> None:
        """Bind the socket and start every worker.

        Raises
        ------
        OSError
            If the address cannot be bound (e.g. the port is in use).
        """
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        sock.listen(1024)
        sock.set_inheritable(True)
        self.sock = sock
        self.port = sock.getsockname()[1]
        for slot in range(self.n_workers):
            self._spawn(slot)
        self.started = True
        self._write_state("InService")
        log.info(
            "serving %s on http://%s:%d with %d worker(s) under %s",
            self.config.model_dir,
            self.config.host,
            self.port,
            self.n_workers,
            self.config.python,
        )

    def _spawn(self, slot: int) -> None:
        assert self.sock is not None
        fd = self.sock.fileno()
        argv = [self.config.python, str(WORKER_PATH), "--fd", str(fd)]
        argv += ["--model-dir", self.config.model_dir]
        proc = subprocess.Popen(
            argv,
            pass_fds=(fd,),
            env=worker_env(self.config, self.n_workers),
            cwd=self.config.code_dir or self.config.model_dir,
        )
        self.workers[slot] = proc
        self.started_at[slot] = time.monotonic()
        log.info("started worker %d (pid %d)", slot, proc.pid)

    def check_workers(self) -> None:
        """Replace every worker that has exited (called by the main loop)."""
        for slot, proc in list(self.workers.items()):
            code = proc.poll()
            if code is None:
                continue
            lived = time.monotonic() - self.started_at[slot]
            log.warning(
                "worker %d (pid %d) exited with %s after %.1fs", slot, proc.pid, code, lived
            )
            self._crashes = self._crashes + 1 if lived < _CRASH_WINDOW else 0
            if self._crashes >= _MAX_CRASHES:
                log.error("workers keep dying at start-up; giving up (see the lines above)")
                self.exit_code = 1
                self.should_exit = True
                return
            if self._crashes:
                time.sleep(min(0.2 * self._crashes, 2.0))
            self._spawn(slot)
            self._write_state("InService")

    def request_exit(self, signum: int | None = None, frame: Any = None) -> None:
        """Ask the main loop to stop (safe to call from a signal handler)."""
        self.should_exit = True

    def main_loop(self) -> None:
        """Watch the workers until :attr:`should_exit` is set."""
        while not self.should_exit:
            self.check_workers()
            time.sleep(0.05)

    def shutdown(self, grace: float | None = None) -> None:
        """Ask every worker to drain (SIGTERM), wait, then SIGKILL what is left; close the socket.

        Parameters
        ----------
        grace : float, optional
            Seconds to wait for the workers; default the request timeout plus 5 s.
        """
        self._write_state("Deleting")
        wait_for = self.config.timeout + 5.0 if grace is None else grace
        for proc in self.workers.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait_for
        for proc in self.workers.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0fs; killing it", proc.pid, wait_for)
                proc.kill()
                proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._write_state("Stopped")
        log.info("model server stopped")

    def run(self, install_signals: bool = True) -> int:
        """Start, watch until SIGTERM/SIGINT, shut down; return the exit code.

        Parameters
        ----------
        install_signals : bool, default=True
            Install SIGTERM/SIGINT handlers (only possible in the main thread).

        Returns
        -------
        int
            0 after a clean stop, 1 when workers kept crashing.
        """
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_exit)
            signal.signal(signal.SIGINT, self.request_exit)
        self.startup()
        try:
            self.main_loop()
        finally:
            self.shutdown()
        return self.exit_code

    def _write_state(self, status: str) -> None:
        if not self.config.state_file:
            return
        state = {
            "pid": os.getpid(),
            "host": self.config.host,
            "port": self.port,
            "url": f"http://{_url_host(self.config.host)}:{self.port}",
            "workers": [p.pid for p in self.workers.values() if p.poll() is None],
            "status": status,
            "updated": time.time(),
        }
        path = Path(self.config.state_file)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, path)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - only used to build a client URL
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def serve(config: ServerConfig) -> int:
    """Run a model server in the foreground until SIGTERM or Ctrl-C.

    Parameters
    ----------
    config : ServerConfig
        What to serve and how.

    Returns
    -------
    int
        The process exit code (0 after a clean stop).

    Raises
    ------
    OSError
        If the address cannot be bound.
    """
    return Supervisor(config).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsage.serving.supervisor --config FILE``."""
    parser = argparse.ArgumentParser(description="fedsage model-server supervisor")
    parser.add_argument("--config", required=True, help="a ServerConfig as JSON")
    args = parser.parse_args(argv)
    config = ServerConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s",
    )
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
