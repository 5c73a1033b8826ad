"""Processes by PID, checked by their start time so that a reused PID is never signalled.

Plain functions over ``/proc`` that import neither ``dataclasses`` nor ``pathlib``: the
model-server supervisor (which keeps what it imports while its endpoint lives) uses them;
:mod:`fedsage._process` re-exports them beside :class:`~fedsage._process.ProcessIdentity`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

__all__ = ["alive", "process_start", "stop_process"]


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            raw = file.read()
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
        return not os.path.isdir("/proc")  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
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
