"""The warm parent of a runtime: libraries imported once, a zygote forked per endpoint.

A zygote started as a fresh interpreter pays for importing numpy and the model's
libraries (scikit-learn 1.9 takes seconds) before it can load a model.  The warm parent
is a long-lived process per runtime that has imported them already; a supervisor asks it
for a zygote over an ``AF_UNIX`` / ``SOCK_SEQPACKET`` socket in a private folder, and it
forks one in milliseconds.  The forked child takes the endpoint's environment, working
folder, log and control socket, then runs exactly what ``--control`` runs.

Protocol (``framing.send_json`` / ``recv_json``) on a connection the supervisor keeps::

    supervisor -> warm parent   {"op": "spawn", "model_dir", "cwd", "env"} + [control fd, log fd]
    warm parent -> supervisor   {"pid": PID}   (or {"error": TEXT})

The zygote tells its parent which library modules loading the model imported (those under
the interpreter's own prefixes, never the user's code; noted by an ``ImportRecorder`` on
``sys.meta_path``, not by walking ``sys.modules``, which would copy pages the zygote
shares with its parent); the warm parent keeps their names in ``--modules FILE`` for the
next warm parent of that interpreter, which imports them at start, and imports them
itself right before it forks its next zygote, so the next endpoint's model loads without
importing anything.  Not at once: while the first endpoint runs, they would live twice,
in its zygote and in the warm parent (about 12 MiB with scikit-learn 1.9).

Each supervisor keeps its connection open for as long as it runs (later requests, for a
zygote that died, come on it): the warm parent stops when the last of those connections
closes (its last endpoint went), or when none came within ``IDLE_TIMEOUT`` seconds of its
start.  Zygotes it forked do not depend on it: they keep serving if it goes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import importlib
import logging
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any, Iterable

from .framing import recv_json, send_json

log = logging.getLogger("fedsage.worker")

#: Seconds a warm parent waits for its first endpoint before it stops.
IDLE_TIMEOUT = 120.0
#: What every warm parent imports, when the runtime has it.
BASE_MODULES = ("numpy", "joblib", "sklearn", "sklearn.base", "sklearn.utils")
_PEERCRED = struct.Struct("3i")


def library_modules(names: Iterable[str]) -> list[str]:
    """Those of ``names`` that are imported modules of the interpreter's libraries.

    Only modules whose file lies under the interpreter's own prefixes count (the standard
    library and site-packages), so nothing of the user's code is ever imported in a warm
    parent.  Only the modules named are looked at: walking all of ``sys.modules`` in a
    forked zygote would write the reference count of every module object and name it
    shares with its warm parent, i.e. copy those pages (about 5 MiB with scikit-learn 1.x)
    for good.
    """
    prefixes = tuple(
        os.path.join(os.path.realpath(p), "")
        for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    )
    found = set()
    for name in names:
        module = sys.modules.get(name)
        if module is None or name == "__main__":
            continue
        path = getattr(module, "__file__", None)
        if path and os.path.realpath(path).startswith(prefixes):
            found.add(name)
    return sorted(found)


class ImportRecorder:
    """A ``sys.meta_path`` entry that notes the name of every module looked for.

    The import system asks the finders only for modules not imported yet, so the names
    noted while it is installed are a superset of the modules imported meanwhile (a name
    probed with ``importlib.util.find_spec`` or a failed import is noted too;
    :func:`library_modules` keeps the ones that were imported).  It finds nothing itself.
    """

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        """Note ``fullname``; the finders after this one find it."""
        self.names.append(fullname)

    def install(self) -> ImportRecorder:
        """Put this recorder first on ``sys.meta_path``; return it."""
        sys.meta_path.insert(0, self)
        return self

    def remove(self) -> None:
        """Take this recorder off ``sys.meta_path``."""
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


def _import_all(names: list[str]) -> None:
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional part that fails here fails in the zygote too
            log.debug("warm parent: cannot import %s: %s", name, exc)


class WarmParent:
    """Serves spawn requests on ``path`` until its last supervisor disconnects.

    Parameters
    ----------
    path : str
        The socket to listen on (in a private folder; only this user may connect).
    modules_file : str or None
        Names of modules to import at start, one a line; learned names are added to it.
    idle_timeout : float
        Seconds to wait for the first request before stopping.
    """

    def __init__(self, path: str, modules_file: str | None, idle_timeout: float = IDLE_TIMEOUT):
        self.path = path
        self.modules_file = modules_file
        self.idle_timeout = idle_timeout
        self.children: set[int] = set()
        self.reports: dict[int, socket.socket] = {}  # our end of each zygote's report channel
        self.leases: set[socket.socket] = set()  # one open connection per supervisor
        self.pending: list[str] = []  # learned from a zygote, imported before the next fork
        self.spawned = 0
        self.stopping = False
        self.listener: socket.socket | None = None
        self._lock: Any = None

    def _stop(self, signum: int | None = None, frame: Any = None) -> None:
        self.stopping = True

    def _bind(self) -> socket.socket | None:
        """Listen on the path; None when another live warm parent already does."""
        lock = open(self.path + ".lock", "a")  # noqa: SIM115 - held for the process's life
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                probe.connect(self.path)
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)  # a stale socket of a warm parent that died
            else:
                return None
            finally:
                probe.close()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            listener.bind(self.path)
            listener.listen(64)
            return listener
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
            self._lock = lock

    def serve(self) -> int:
        """Bind, import, then fork zygotes on request; return the exit code."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.listener = self._bind()
        if self.listener is None:
            log.info("warm parent: another one serves %s", self.path)
            return 0
        started = time.monotonic()
        _import_all([*BASE_MODULES, *self._learned()])
        gc.collect()
        gc.freeze()
        log.info(
            "warm parent %d ready in %.2fs with %d modules",
            os.getpid(),
            time.monotonic() - started,
            len(sys.modules),
        )
        started = time.monotonic()
        try:
            while not self.stopping:
                watched = [self.listener, *self.leases, *self.reports.values()]
                readable, _, _ = select.select(watched, [], [], 0.2)
                for ready in readable:
                    if ready is self.listener:
                        self._accept()
                    elif ready in self.leases:
                        self._request(ready)
                    else:
                        self._report(ready)
                self._reap()
                if not self.leases and (
                    self.spawned or time.monotonic() - started > self.idle_timeout
                ):
                    break  # the last endpoint went (or none ever came)
        finally:
            self._close()
        return 0

    def _close(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.listener.close()
            self.listener = None
        for channel in [*self.reports.values(), *self.leases]:
            channel.close()
        self.reports.clear()
        self.leases.clear()

    def _learned(self) -> list[str]:
        if not self.modules_file:
            return []
        try:
            with open(self.modules_file, encoding="utf-8") as handle:
                return [line.strip() for line in handle if line.strip()]
        except OSError:
            return []

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        uid = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )[1]
        if uid != os.getuid():
            log.warning("warm parent: refused a connection of user %d", uid)
            conn.close()
            return
        # A supervisor keeps its connection for its whole life: it is the lease that
        # keeps this process running, and its later requests (a zygote that died) come
        # on it.  A probe just closes it.
        self.leases.add(conn)

    def _request(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            request, fds = recv_json(conn)
        except (OSError, ValueError) as exc:
            request = {}
            log.warning("warm parent: a broken request: %s", exc)
        try:
            if not request and not fds:  # the supervisor (or a probe) is gone
                self.leases.discard(conn)
                conn.close()
                return
            try:
                if request.get("op") != "spawn" or len(fds) != 2:
                    raise ValueError("a spawn request carries the control and the log socket")
                pid = self._spawn(request, fds[0], fds[1])
                send_json(conn, {"pid": pid})
            except Exception as exc:
                log.warning("warm parent: refused a request: %s", exc)
                with contextlib.suppress(OSError):
                    send_json(conn, {"error": str(exc)})
        finally:
            for fd in fds:
                os.close(fd)

    def _spawn(self, request: dict[str, Any], control: int, log_fd: int) -> int:
        """Fork a zygote for ``request``; return its PID."""
        self._import_pending()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for stream in (sys.stdout, sys.stderr):  # nothing of ours printed twice
            stream.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                if self._lock is not None:
                    self._lock.close()
                assert self.listener is not None
                self.listener.close()
                for channel in [*self.reports.values(), *self.leases]:
                    channel.close()
                code = _zygote_child(request, control, log_fd, theirs)
            except BaseException:
                log.exception("zygote failed")
            finally:
                os._exit(code)
        theirs.close()
        self.children.add(pid)
        self.reports[pid] = ours
        self.spawned += 1
        log.info("warm parent: forked zygote %d for %s", pid, request.get("model_dir"))
        return pid

    def _report(self, channel: socket.socket) -> None:
        pid = next(p for p, c in self.reports.items() if c is channel)
        try:
            report, fds = recv_json(channel)
        except (OSError, ValueError):
            report, fds = {}, []
        for fd in fds:
            os.close(fd)
        del self.reports[pid]
        channel.close()
        names = [
            n for n in report.get("modules", []) if n not in sys.modules and n not in self.pending
        ]
        if not names:
            return
        # Imported only when the next endpoint asks (see _spawn): imported now, they would
        # live twice while this endpoint runs, in its zygote and here.
        self.pending.extend(names)
        if self.modules_file:
            known = set(self._learned())
            with open(self.modules_file, "a", encoding="utf-8") as handle:
                handle.writelines(n + "\n" for n in names if n not in known)
        log.info("warm parent: learned %d more modules for the next endpoints", len(names))

    def _import_pending(self) -> None:
        """Import what earlier zygotes needed, before forking the next one."""
        if not self.pending:
            return
        started = time.monotonic()
        names, self.pending = self.pending, []
        _import_all(names)
        gc.collect()
        gc.freeze()
        log.info(
            "warm parent: imported %d learned modules in %.2fs",
            len(names),
            time.monotonic() - started,
        )

    def _reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            channel = self.reports.pop(pid, None)
            if channel is not None:
                channel.close()


def _zygote_child(request: dict[str, Any], control: int, log_fd: int, report: socket.socket) -> int:
    """In the forked child: become the endpoint's zygote (its environment, folder, log)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:  # a fresh interpreter's numpy draws its own seed
        numpy_random.seed()
    model_dir = request["model_dir"]
    sys.argv = [sys.argv[0], "--control", str(control), "--model-dir", model_dir]
    recorder = ImportRecorder().install()

    def loaded() -> None:
        recorder.remove()
        with contextlib.suppress(OSError, ValueError):
            send_json(report, {"modules": library_modules(recorder.names)})
        report.close()

    from .entry import run_zygote

    return run_zygote(socket.socket(fileno=control), model_dir, os.environ, on_loaded=loaded)


def main(path: str, modules_file: str | None) -> int:
    """``_worker --warm PATH``: run a warm parent until its last endpoint goes."""
    try:
        return WarmParent(path, modules_file).serve()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            log.error("warm parent: the socket path is too long: %s", path)
            return 2
        raise


__all__ = [
    "BASE_MODULES",
    "IDLE_TIMEOUT",
    "ImportRecorder",
    "WarmParent",
    "library_modules",
    "main",
]
