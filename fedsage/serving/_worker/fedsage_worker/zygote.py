"""The preloading parent: loads the model once, forks the workers, hands them connections."""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import signal
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Callable

from .framing import recv_message, send_message
from .protocol import ConnectionLimits, allowed_hosts, run
from .service import freeze_heap, load_service

if TYPE_CHECKING:
    from .service import BrokenService, Service

log = logging.getLogger("fedsage.worker")

_MAX_SLOTS = 1024
_ACCEPT_BATCH = 64  # connections accepted per wake-up before looking at control again
_BUSY_AFTER = 2.0  # seconds without a heartbeat: busy with a request, served last


def exit_code(status: int) -> int:
    """A ``waitpid`` status as ``Popen.returncode`` (negative: killed by that signal)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def kill(pid: int, signum: int) -> None:
    """Signal ``pid``; a process that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class Zygote:
    """Loads the model once, then forks workers on the supervisor's request.

    The control socket (``AF_UNIX``/``SOCK_SEQPACKET``) carries one command per message:
    ``fork SLOT`` with the slot's listening socket attached, and ``stop GRACE``.  The
    zygote answers ``ready SECONDS`` once the model is loaded, ``forked SLOT PID`` and
    ``exited SLOT PID CODE`` (``CODE`` as ``Popen.returncode``).  Workers share the
    loaded model copy-on-write.

    The zygote keeps every slot's listening socket and accepts the connections itself:
    each goes to the next worker in turn over that worker's hand-over channel (a
    ``SOCK_SEQPACKET`` pair made at fork), workers whose heartbeat is older than
    ``_BUSY_AFTER`` last.  With ``SO_REUSEPORT`` alone the kernel hashes each connection
    to a socket, so a few keep-alive connections often landed unevenly on the workers
    (all on one, in some runs); handing them over spreads them exactly, as Node's
    cluster module does for the same reason.  While no worker runs, connections wait in
    the listening backlog.  A worker whose heartbeat is older than the request timeout
    + ``hang_grace`` seconds is stuck outside Python (a C call, a deadlock) and is
    killed, so that it is replaced.

    Parameters
    ----------
    control : socket.socket
        The zygote's end of the control socket pair.
    model_dir : str
        The extracted model.
    timeout : float
        Seconds a request may take.
    max_body : int
        The largest request body in bytes.
    hang_grace : float, default=10.0
        Seconds beyond ``timeout`` after which a silent worker is killed.
    hosts : frozenset of bytes or None
        The ``Host`` names the workers answer (None: any).
    on_loaded : callable, optional
        Called once the model is loaded, before the first worker is forked (a warm
        parent's zygote reports the modules it imported).
    limits : ConnectionLimits
        How long the workers wait on a client.
    """

    def __init__(
        self,
        control: socket.socket,
        model_dir: str,
        timeout: float,
        max_body: int,
        hang_grace: float = 10.0,
        hosts: frozenset[bytes] | None = allowed_hosts(None),
        on_loaded: Callable[[], None] | None = None,
        limits: ConnectionLimits = ConnectionLimits(),
    ) -> None:
        self.on_loaded = on_loaded
        self.limits = limits
        self.control: socket.socket | None = control
        self.model_dir = model_dir
        self.timeout = timeout
        self.max_body = max_body
        self.hosts = hosts
        self.hang_after = timeout + hang_grace
        self.children: dict[int, int] = {}  # pid -> slot
        self.channels: dict[int, socket.socket] = {}  # pid -> our end of its hand-over channel
        self.listeners: dict[int, socket.socket] = {}  # slot -> listening socket (we accept)
        self.turn = 0
        self.killed: set[int] = set()
        self.beats = mmap.mmap(-1, 8 * _MAX_SLOTS)
        self.stopping: float | None = None  # grace in seconds once a stop is asked
        self.service: Service | BrokenService | None = None

    def _stop(self, signum: int | None = None, frame: Any = None) -> None:
        if self.stopping is None:
            self.stopping = 10.0

    def serve(self) -> int:
        """Load the model, then fork, accept and watch until asked to stop; return 0."""
        started = time.monotonic()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.service = load_service(self.model_dir)
        if self.on_loaded is not None:
            self.on_loaded()
        freeze_heap()
        self._tell("ready", f"{time.monotonic() - started:.3f}")
        while self.stopping is None:
            watched = [self.control] if self.control is not None else []
            if self.channels:  # no worker yet: connections wait in the backlog
                watched.extend(self.listeners.values())
            readable, _, _ = select.select(watched, [], [], 0.2)
            for ready in readable:
                if ready is self.control:
                    self._commands()
                elif self.stopping is None:
                    self._accept(ready)
            self._reap()
            self._check_hung()
        self._shutdown(self.stopping)
        return 0

    def _tell(self, *words: Any) -> None:
        if self.control is None:
            return
        try:
            send_message(self.control, words)
        except OSError:  # the supervisor is gone
            self.control = None
            self._stop()

    def _commands(self) -> None:
        # Every pending command before the next accept: the supervisor queues all the
        # start-up forks at once, so no connection reaches a lone first worker.
        self._command()
        while self.control is not None and select.select([self.control], [], [], 0)[0]:
            self._command()

    def _command(self) -> None:
        assert self.control is not None
        try:
            words, fds = recv_message(self.control)
        except OSError:
            words, fds = [], []
        if not words:  # the supervisor is gone: stop, the workers drain on their own
            self.control = None
            self._stop()
        elif words[0] == "fork" and len(words) == 2 and fds:
            self._fork(int(words[1]), fds.pop(0))
        elif words[0] == "stop":
            self.stopping = float(words[1]) if len(words) > 1 else 10.0
        for extra in fds:
            os.close(extra)

    def _fork(self, slot: int, fd: int) -> None:
        service = self.service
        assert service is not None, "forks are asked for only once the model is loaded"
        slot = slot % _MAX_SLOTS
        listener = socket.socket(fileno=fd)
        listener.setblocking(False)
        previous = self.listeners.pop(slot, None)
        if previous is not None:  # the same socket, sent again for a replacement
            previous.close()
        self.listeners[slot] = listener
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        struct.pack_into("d", self.beats, slot * 8, time.monotonic())
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                inherited = [self.control, ours, *self.listeners.values(), *self.channels.values()]
                for sock in inherited:
                    if sock is not None:
                        sock.close()
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                run(
                    None,
                    service,
                    self.timeout,
                    self.max_body,
                    heartbeat=(self.beats, slot),
                    channel=theirs,
                    hosts=self.hosts,
                    limits=self.limits,
                )
                code = 0
            except BaseException:
                log.exception("worker failed")
            finally:
                os._exit(code)
        theirs.close()
        ours.setblocking(False)
        self.children[pid] = slot
        self.channels[pid] = ours
        self._tell("forked", slot, pid)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, aborted handshake, ...
                log.warning("accepting a connection failed: %s", exc)
                return
            try:
                self._hand_over(conn)
            finally:
                conn.close()  # the worker has its own descriptor now

    def _hand_over(self, conn: socket.socket) -> None:
        """Send ``conn`` to the next worker in turn, idle workers before busy ones."""
        now = time.monotonic()
        pids = [pid for pid in self.channels if pid not in self.killed]
        idle = [
            pid
            for pid in pids
            if now - struct.unpack_from("d", self.beats, self.children[pid] * 8)[0] < _BUSY_AFTER
        ]
        self.turn += 1
        for candidates in (idle, pids):
            for i in range(len(candidates)):
                pid = candidates[(self.turn + i) % len(candidates)]
                try:
                    send_message(self.channels[pid], ["conn"], [conn.fileno()])
                    return
                except OSError:  # its channel is full (stuck) or it is gone
                    continue
        log.error("no worker could take a connection; it was closed")

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            channel = self.channels.pop(pid, None)
            if channel is not None:
                channel.close()
            self.killed.discard(pid)
            if slot is not None:
                self._tell("exited", slot, pid, exit_code(status))

    def _check_hung(self) -> None:
        now = time.monotonic()
        for pid, slot in list(self.children.items()):
            beat = struct.unpack_from("d", self.beats, slot * 8)[0]
            if now - beat > self.hang_after and pid not in self.killed:
                log.error(
                    "worker %d has not answered for %.0fs (stuck outside Python); killing it",
                    pid,
                    now - beat,
                )
                self.killed.add(pid)
                kill(pid, signal.SIGKILL)

    def _shutdown(self, grace: float) -> None:
        for listener in self.listeners.values():  # new connections wait in the backlog
            listener.close()
        self.listeners.clear()
        for pid in list(self.children):
            kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for pid in list(self.children):
            log.warning("worker %d did not stop in %.0fs; killing it", pid, grace)
            kill(pid, signal.SIGKILL)
        while self.children:
            self._reap()
            time.sleep(0.01)
