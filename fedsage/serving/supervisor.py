"""The model-server supervisor: a listening socket per worker, a preloading zygote, replacement.

The supervisor runs in fedsage's own environment.  It binds one listening socket per
worker slot on the same address with ``SO_REUSEPORT`` (127.0.0.1 unless asked otherwise;
port 0 picks a free port).  The zygote accepts on them and hands each connection to
the next worker in turn; a plain worker (``preload=False``) accepts on its own socket
and the kernel's hash spreads the connections.

By default (``preload=True``) it starts one *zygote* under the runtime's interpreter,
``<runtime python> WORKER_PATH --control N --model-dir DIR`` (``WORKER_PATH`` is the folder
``_worker``, run through its ``__main__.py``; no fedsage install is needed inside the
runtime): the zygote imports the
entry point and runs ``model_fn`` once, then forks each worker when the supervisor sends
it that worker's socket over the control socket (``SCM_RIGHTS``).  Workers share the
loaded model copy-on-write, start in milliseconds, and a dead worker is replaced by a
new fork on the same socket (connections that arrive meanwhile wait in its backlog).
With ``preload=False`` every worker is a fresh ``--fd N`` process that loads the model
itself (for models that are not safe to fork).  SIGTERM or SIGINT only set a flag; the
main loop then asks every worker to drain and stops the stragglers by PID.

``python -m fedsage.serving.supervisor --config FILE`` runs a supervisor from a JSON
:class:`ServerConfig`; that is how a detached local endpoint is started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .._pid import alive, process_start
from ._worker.fedsage_worker import DEFAULT_MAX_BODY
from ._worker.fedsage_worker.framing import recv_json, recv_message, send_json, send_message

__all__ = [
    "DEFAULT_MAX_BODY",
    "WORKER_PATH",
    "ServerConfig",
    "Supervisor",
    "is_loopback_host",
    "recv_message",
    "send_message",
    "serve",
    "worker_env",
]

log = logging.getLogger(__name__)

#: What the supervisor runs under a runtime's interpreter: a folder with ``__main__.py``.
WORKER_PATH = Path(__file__).resolve().parent / "_worker"
_SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
_CRASH_WINDOW = 3.0  # a worker dying sooner than this after start counts as a crash
_MAX_CRASHES = 5
_WARM_TIMEOUT = 120.0  # seconds to wait for a warm parent's zygote (it may be importing)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ServerConfig:
    """Everything a model server needs; JSON-serialisable so a detached server can read it.

    A plain class, not a dataclass: the supervisor process keeps what it imports for its
    endpoint's whole life, and ``dataclasses`` brings ``inspect``, ``ast``, ``dis`` and
    ``tokenize`` (about 1 MiB of private memory).  The constructor takes the attributes
    below as arguments, ``model_dir`` first (``env`` defaults to a new empty dict); ``==``
    compares them all.

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
        Where to listen; port 0 picks a free port.  On a loopback address the workers
        answer only requests whose ``Host`` is ``localhost``, ``127.0.0.1``, ``[::1]`` or
        ``host`` itself (421 otherwise; ``FEDSAGE_ALLOWED_HOSTS`` in ``env`` adds names);
        on any other address they answer every name, without authentication.
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
    preload : bool
        Load the model once in a zygote and fork the workers from it (default); ``False``
        starts every worker as a fresh process that loads the model itself.
    warm : bool
        Ask the runtime's warm parent for the zygote (started if none runs; see
        :mod:`fedsage.serving.warm`), so that the libraries are imported once per
        runtime instead of once per endpoint.  Only with ``preload``; a zygote that a
        warm parent cannot give is started as a fresh interpreter.
    warm_start : bool
        Start the warm parent when none runs (default).  ``False``: use the runtime's
        warm parent only if one is running, else start the zygote cold; for a server
        that lives only as long as one task (batch scoring), whose warm parent would
        stop with it: starting one would cost its start and memory for nothing.
    warm_address : dict or None
        Where that warm parent lives (``key``, ``socket``, ``modules``), filled in by
        :func:`fedsage.serving.warm.with_address` where the config is written; when it is
        missing the supervisor works it out itself (which imports hashing and costs it
        about 3 MiB for its lifetime).
    runtime : str
        The runtime's name in listings (its framework version).
    """


    def __init__(
        self,
        model_dir: str,
        python: str = sys.executable,
        code_dir: str | None = None,
        program: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int | None = None,
        timeout: float = 60.0,
        max_body: int = DEFAULT_MAX_BODY,
        debug: bool = False,
        env: dict[str, str] | None = None,
        state_file: str | None = None,
        preload: bool = True,
        warm: bool = False,
        warm_start: bool = True,
        warm_address: dict[str, str] | None = None,
        runtime: str = "",
    ) -> None:
        self.model_dir = model_dir
        self.python = python
        self.code_dir = code_dir
        self.program = program
        self.host = host
        self.port = port
        self.workers = workers
        self.timeout = timeout
        self.max_body = max_body
        self.debug = debug
        self.env: dict[str, str] = {} if env is None else env
        self.state_file = state_file
        self.preload = preload
        self.warm = warm
        self.warm_start = warm_start
        self.warm_address = warm_address
        self.runtime = runtime

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict of plain values (the constructor's keyword arguments)."""
        return {k: dict(v) if isinstance(v, dict) else v for k, v in vars(self).items()}

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes`` applied (as :func:`dataclasses.replace` would)."""
        return type(self)(**{**vars(self), **changes})

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Build from :meth:`to_json` output."""
        return cls(**json.loads(text))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` listens on loopback only (``127.0.0.0/8``, ``::1``).

    Parameters
    ----------
    host : str
        An address or a name, as given to ``--host`` (``[::1]`` brackets allowed).  A name
        is resolved as binding it would resolve it; an empty host means every address.

    Returns
    -------
    bool
        True when every address ``host`` stands for is a loopback address.
    """
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    if not bare:
        return False
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    try:
        infos = socket.getaddrinfo(bare, None, family, socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_loopback for info in infos
    )


def _allowed_hosts(host: str) -> str:
    """``FEDSAGE_ALLOWED_HOSTS`` for the workers: ``*`` off loopback, else the bind host."""
    if not is_loopback_host(host):
        return "*"  # reached by any name (a LAN address, a container's hostname)
    return host.strip("[]").lower()  # the worker always adds localhost, 127.0.0.1, [::1]


def worker_count(config: ServerConfig) -> int:
    """How many workers ``config`` asks for: ``workers``, or one per core."""
    return max(1, int(config.workers or os.cpu_count() or 1))


def check_worker_env(extra: dict[str, str]) -> None:
    """Refuse, before a server starts, a setting its workers would fail on.

    The workers read ``FEDSAGE_READ_TIMEOUT`` and ``FEDSAGE_KEEPALIVE_TIMEOUT`` from
    our environment with ``extra`` (a config's ``env``) over it, as :func:`worker_env`
    builds theirs.  Called by the process that starts a server, never by a supervisor
    (the worker's protocol module imports asyncio).

    Raises
    ------
    ConfigurationError
        When one of them is not a positive number of seconds (the message names it).
    """
    from ..errors import ConfigurationError
    from ._worker.fedsage_worker.protocol import connection_limits

    try:
        connection_limits({**os.environ, **extra})
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def worker_env(config: ServerConfig, workers: int) -> dict[str, str]:
    """The environment of a worker: ours minus Python path variables, plus serving settings.

    The serving settings are SageMaker's (``SAGEMAKER_PROGRAM`` ...) and fedsage's
    (``FEDSAGE_MAX_BODY``, ``FEDSAGE_DEBUG``, ``FEDSAGE_ALLOWED_HOSTS``: ``*`` when
    ``config.host`` is not a loopback address, else the bind host); ``OMP_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` default to the cores per worker
    when neither our environment nor ``config.env`` sets them; ``config.env`` comes
    last and may override any of them.

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
            # sagemaker_containers parses this with int() when a script imports it.
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(max(1, math.ceil(config.timeout))),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            "SAGEMAKER_BIND_TO_PORT": str(config.port),
            "SM_MODEL_DIR": config.model_dir,
            "FEDSAGE_MAX_BODY": str(config.max_body),
            "FEDSAGE_ALLOWED_HOSTS": _allowed_hosts(config.host),
            "FEDSAGE_DEBUG": "1" if config.debug else "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Native thread pools sized to the worker's share of the cores, unless set: each
    # worker is one process on (about) one core, and OpenBLAS or OpenMP threads of
    # their own only make a request wait for them (the 0.23-1 runtime's OpenBLAS woke
    # its threads for the product of a 1,000-row request: 2 ms instead of 0.6 ms).
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    for name in _THREAD_VARIABLES:
        if name not in env and name not in config.env:
            env[name] = threads
    env.update(config.env)
    return env


class _ForkedZygote:
    """A zygote that a warm parent forked: not our child, so watched by PID and start time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = process_start(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not alive(self.pid, self.start):
            self.returncode = -1  # its exit code went to the warm parent
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Supervisor:
    """Runs and watches the workers of one model server.

    Parameters
    ----------
    config : ServerConfig
        What to serve and how.

    Attributes
    ----------
    started : bool
        True once the sockets are bound and the workers are being started.
    should_exit : bool
        Set by a signal (or :meth:`request_exit`); the main loop then shuts down.
    port : int
        The bound port (known after :meth:`startup`).
    pids : dict
        Worker slot -> PID of the running worker.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.socks: dict[int, socket.socket] = {}
        self.pids: dict[int, int] = {}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}  # preload=False only
        self.started_at: dict[int, float] = {}
        self.zygote: subprocess.Popen[bytes] | _ForkedZygote | None = None
        self.warm_started: list[subprocess.Popen[bytes]] = []  # reaped as they exit
        self.warm_conn: socket.socket | None = None
        self.control: socket.socket | None = None
        self.zygote_started = 0.0
        self.started = False
        self.should_exit = False
        self.exit_code = 0
        self.port = config.port
        self._crashes = 0
        self._status = "Creating"
        self._stopping = False
        self.n_workers = worker_count(config)

    # ---- sockets
    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.config.host, port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        return sock

    def bind_all(self) -> None:
        """Bind one listening socket per worker slot, all on one port (``SO_REUSEPORT``).

        Raises
        ------
        OSError
            If the address cannot be bound (e.g. the port is in use).
        """
        try:
            for slot in range(self.n_workers):
                sock = self._bind(self.port)
                self.port = sock.getsockname()[1]
                self.socks[slot] = sock
        except OSError:
            for sock in self.socks.values():
                sock.close()
            self.socks.clear()
            raise

    # ---- lifecycle
    def startup(self) -> None:
        """Bind the sockets and start the workers (through the zygote unless preload is off).

        Raises
        ------
        OSError
            If the address cannot be bound (e.g. the port is in use).
        """
        self.bind_all()
        if self.config.preload:
            self._start_zygote()
        else:
            for slot in range(self.n_workers):
                self._spawn(slot)
        self.started = True
        self._write_state()
        log.info(
            "serving %s on http://%s:%d with %d worker(s) under %s%s",
            self.config.model_dir,
            self.config.host,
            self.port,
            self.n_workers,
            self.config.python,
            " (preloading zygote)" if self.config.preload else "",
        )

    def _start_zygote(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = worker_env(self.config, self.n_workers)
        cwd = self.config.code_dir or self.config.model_dir
        try:
            forked = self._warm_zygote(theirs, env, cwd) if self.config.warm else None
            if forked is None:
                argv = [self.config.python, str(WORKER_PATH), "--control", str(theirs.fileno())]
                argv += ["--model-dir", self.config.model_dir]
                self.zygote = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), env=env, cwd=cwd)
                log.info("started zygote (pid %d)", self.zygote.pid)
            else:
                self.zygote = forked
                log.info("the runtime's warm parent forked zygote (pid %d)", forked.pid)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.control = ours
        self.zygote_started = time.monotonic()
        for slot in range(self.n_workers):  # queued until the model is loaded
            self._ask_fork(slot)

    def _warm_zygote(
        self, control: socket.socket, env: dict[str, str], cwd: str
    ) -> _ForkedZygote | None:
        """Ask the runtime's warm parent for a zygote; None: start one cold instead.

        The connection to the warm parent stays open while this supervisor runs: it is
        what keeps the warm parent running (it stops when its last supervisor goes), and
        a zygote that dies is asked for again on it.
        """
        request = {"op": "spawn", "model_dir": self.config.model_dir, "cwd": cwd, "env": env}
        fds = [control.fileno(), sys.stderr.fileno()]
        for _ in range(2):  # a warm parent may stop just as we connect: start another
            if self.warm_conn is None:
                self.warm_conn = self._connect_warm(env)
                if self.warm_conn is None:
                    return None
            try:
                send_json(self.warm_conn, request, fds)
                answer, extra = recv_json(self.warm_conn)
            except (OSError, ValueError) as exc:
                log.info("the warm parent did not answer (%s)", exc)
                answer, extra = {}, []
            for fd in extra:
                os.close(fd)
            if isinstance(answer, dict) and "pid" in answer:
                return _ForkedZygote(int(answer["pid"]))
            self.warm_conn.close()
            self.warm_conn = None
            if answer:
                log.warning("the warm parent refused (%s)", answer.get("error"))
                break
        log.warning("starting the zygote as a fresh interpreter")
        return None

    def _connect_warm(self, env: dict[str, str]) -> socket.socket | None:
        from .warm import WarmAddress, ensure_warm_parent

        given = self.config.warm_address
        try:
            address = WarmAddress(**given) if given else None
            found = ensure_warm_parent(
                self.config.python, env, self.config.runtime, WORKER_PATH, address,
                start=self.config.warm_start,
            )
        except Exception as exc:  # a broken home or registry must not stop the endpoint
            log.warning("no warm parent (%s)", exc)
            return None
        if found is None:
            return None
        path, started = found
        if started is not None:
            self.warm_started.append(started)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(_WARM_TIMEOUT)
        try:
            conn.connect(path)
        except OSError as exc:
            log.info("cannot reach the warm parent at %s (%s)", path, exc)
            conn.close()
            return None
        return conn

    def _ask_fork(self, slot: int) -> None:
        self.started_at[slot] = time.monotonic()
        if self.control is None:
            return
        try:
            send_message(self.control, ["fork", slot], [self.socks[slot].fileno()])
        except OSError as exc:  # the zygote is gone; check_workers restarts it
            log.warning("cannot reach the zygote: %s", exc)

    def _spawn(self, slot: int) -> None:
        fd = self.socks[slot].fileno()
        argv = [self.config.python, str(WORKER_PATH), "--fd", str(fd)]
        argv += ["--model-dir", self.config.model_dir]
        proc = subprocess.Popen(
            argv,
            pass_fds=(fd,),
            env=worker_env(self.config, self.n_workers),
            cwd=self.config.code_dir or self.config.model_dir,
        )
        self.procs[slot] = proc
        self.pids[slot] = proc.pid
        self.started_at[slot] = time.monotonic()
        log.info("started worker %d (pid %d)", slot, proc.pid)

    def _count_crash(self, lived: float) -> bool:
        """Count a quick death; True when the supervisor should give up."""
        self._crashes = self._crashes + 1 if lived < _CRASH_WINDOW else 0
        if self._crashes >= _MAX_CRASHES:
            log.error("workers keep dying at start-up; giving up (see the lines above)")
            self.exit_code = 1
            self.should_exit = True
            return True
        if self._crashes:
            time.sleep(min(0.2 * self._crashes, 2.0))
        return False

    def _worker_exited(self, slot: int, pid: int, code: int) -> None:
        lived = time.monotonic() - self.started_at.get(slot, 0.0)
        level = logging.INFO if self._stopping else logging.WARNING
        log.log(level, "worker %d (pid %d) exited with %s after %.1fs", slot, pid, code, lived)
        if self.pids.get(slot) == pid:
            del self.pids[slot]
        if self._stopping or self._count_crash(lived):
            return
        if self.config.preload:
            self._ask_fork(slot)
        else:
            self._spawn(slot)
        self._write_state()

    def _read_control(self) -> None:
        while self.control is not None:
            try:
                words, fds = recv_message(self.control, block=False)
            except BlockingIOError:
                return
            except OSError:
                words, fds = [], []
            for fd in fds:
                os.close(fd)
            if not words:
                self.control.close()
                self.control = None
                return
            if words[0] == "ready":
                log.info("zygote loaded the model in %ss", words[1])
            elif words[0] == "forked":
                slot, pid = int(words[1]), int(words[2])
                self.pids[slot] = pid
                log.info("started worker %d (pid %d)", slot, pid)
                self._write_state()
            elif words[0] == "exited":
                self._worker_exited(int(words[1]), int(words[2]), int(words[3]))

    def check_workers(self, wait: float = 0.0) -> None:
        """Handle worker deaths and zygote messages (called by the main loop).

        Parameters
        ----------
        wait : float, default=0.0
            Seconds to wait for a message from the zygote before returning.
        """
        if not self.config.preload:
            for slot, proc in list(self.procs.items()):
                code = proc.poll()
                if code is not None and self.pids.get(slot) == proc.pid:
                    self._worker_exited(slot, proc.pid, code)
            if wait:
                time.sleep(wait)
            return
        if self.control is not None and wait:
            select.select([self.control], [], [], wait)
        self._read_control()
        self.warm_started = [p for p in self.warm_started if p.poll() is None]
        if self.zygote is not None and self.zygote.poll() is not None and not self.should_exit:
            lived = time.monotonic() - self.zygote_started
            log.warning(
                "zygote (pid %d) exited with %s after %.1fs; its workers stop on their own",
                self.zygote.pid,
                self.zygote.returncode,
                lived,
            )
            self.pids.clear()
            if self.control is not None:
                self.control.close()
                self.control = None
            if self._count_crash(lived):
                return
            self._start_zygote()
            self._write_state()

    def request_exit(self, signum: int | None = None, frame: Any = None) -> None:
        """Ask the main loop to stop (safe to call from a signal handler)."""
        self.should_exit = True

    def main_loop(self) -> None:
        """Watch the workers until :attr:`should_exit` is set."""
        while not self.should_exit:
            self.check_workers(wait=0.05)

    def shutdown(self, grace: float | None = None) -> None:
        """Ask every worker to drain (SIGTERM), wait, then SIGKILL what is left; close sockets.

        Parameters
        ----------
        grace : float, optional
            Seconds to wait for the workers; default the request timeout plus 5 s.
        """
        self._stopping = True
        self._write_state("Deleting")
        wait_for = self.config.timeout + 5.0 if grace is None else grace
        deadline = time.monotonic() + wait_for
        if self.zygote is not None:
            self._stop_zygote(wait_for, deadline)
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0fs; killing it", proc.pid, wait_for)
                proc.kill()
                proc.wait()
        self.pids.clear()
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()
        if self.warm_conn is not None:  # the warm parent may stop if we were its last
            self.warm_conn.close()
            self.warm_conn = None
        self._write_state("Stopped")
        log.info("model server stopped")

    def _stop_zygote(self, wait_for: float, deadline: float) -> None:
        zygote = self.zygote
        assert zygote is not None
        if zygote.poll() is None:
            try:
                assert self.control is not None
                send_message(self.control, ["stop", wait_for])
            except (OSError, AssertionError):
                with contextlib.suppress(ProcessLookupError):
                    zygote.send_signal(signal.SIGTERM)
        try:
            zygote.wait(timeout=max(0.0, deadline - time.monotonic()) + 2.0)
        except subprocess.TimeoutExpired:
            log.warning("zygote pid %d did not stop; killing it and its workers", zygote.pid)
            zygote.kill()
            zygote.wait()
            for pid in self.pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._read_control()  # the last "exited" messages (logged)
        if self.control is not None:
            self.control.close()
            self.control = None

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

    def _write_state(self, status: str | None = None) -> None:
        if status is None:  # InService once every worker slot has a running worker
            full = len(self.pids) == self.n_workers
            status = "InService" if full or self._status != "Creating" else "Creating"
        self._status = status
        if not self.config.state_file:
            return
        state = {
            "pid": os.getpid(),
            "host": self.config.host,
            "port": self.port,
            "url": f"http://{_url_host(self.config.host)}:{self.port}",
            "workers": sorted(self.pids.values()),
            "zygote": self.zygote.pid if self.zygote is not None else None,
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


def _config_arg(argv: list[str]) -> str:
    """FILE of ``--config FILE``; any other command line goes to :mod:`argparse`.

    The command line fedsage writes, exactly ``--config FILE`` (FILE not starting with
    ``-``), is read directly: argparse, with the ``shutil`` (``bz2``, ``lzma``) and
    ``gettext`` its help formatter imports, would stay in the supervisor for its
    endpoint's whole life (about 0.4 MiB).  Everything else (``--help``, ``--config=FILE``,
    mistakes) gets argparse's answers and errors, as before.
    """
    if len(argv) == 2 and argv[0] == "--config" and not argv[1].startswith("-"):
        return argv[1]  # what argparse returns for this command line
    import argparse

    parser = argparse.ArgumentParser(description="fedsage model-server supervisor")
    parser.add_argument("--config", required=True, help="a ServerConfig as JSON")
    return str(parser.parse_args(argv).config)


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsage.serving.supervisor --config FILE``."""
    path = _config_arg(sys.argv[1:] if argv is None else argv)
    config = ServerConfig.from_json(Path(path).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s",
    )
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
