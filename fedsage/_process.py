"""Processes fedsage started (jobs, servers, gateways), found by PID and checked by start time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProcessIdentity", "alive", "process_start", "start_service", "stop_process"]


def start_service(module: str, folder: Path, config: str, log: str) -> subprocess.Popen[bytes]:
    """Start ``python -m MODULE --config CONFIG`` in ``folder`` as a detached service.

    The process gets its own session (it outlives the notebook kernel that started it),
    no stdin, and its output appended to ``folder / log``.
    """
    from ._home import PRIVATE_UMASK, open_private

    with open_private(folder / log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--config", config],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or ``None``.

    Recorded with a PID, it tells a reused PID from the process fedsage started.
    """
    fields = _stat(pid)
    return None if fields is None else fields[19]


def alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``start`` is given, is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return start is None
    fields = _stat(pid)
    if fields is None:
        return not Path("/proc").is_dir()  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def stop_process(
    pid: int, start: str | None, grace: float = 10.0, must_contain: str | None = None
) -> bool:
    """SIGTERM a process fedsage started, wait up to ``grace`` s, then SIGKILL it.

    Parameters
    ----------
    pid : int
        The process id.
    start : str or None
        Its recorded start time; a different process with the same PID is left alone.
    grace : float, default=10.0
        Seconds between SIGTERM and SIGKILL.
    must_contain : str, optional
        Only signal the process if its command line contains this text.

    Returns
    -------
    bool
        True if the process had to be signalled.
    """
    if not alive(pid, start):
        return False
    if must_contain is not None and must_contain not in _cmdline(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid, start):
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not alive(pid, start):
            break
        time.sleep(0.02)
    return True


@dataclass(frozen=True)
class ProcessIdentity:
    """A process fedsage started, as records keep it: its PID and its start time.

    The start time tells the process from a later one that reuses the PID, so fedsage
    never signals a stranger.
    """

    pid: int
    start: str | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """The identity of the running process ``pid`` (its start time read now)."""
        return cls(pid, process_start(pid))

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not a reused PID)."""
        return self.pid > 0 and alive(self.pid, self.start)

    def stop(self, grace: float = 10.0, must_contain: str | None = None) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` s; see :func:`stop_process`."""
        return stop_process(self.pid, self.start, grace=grace, must_contain=must_contain)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessIdentity | None:
        if not data or data.get("pid") is None:
            return None
        start = data.get("start")
        return cls(int(data["pid"]), None if start is None else str(start))
