"""Processes the local Kyma target started, found by PID and start time (never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["alive", "process_start", "stop_process"]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start(pid: int) -> str | None:
    """Return the start time of ``pid`` in clock ticks since boot (Linux), or ``None``."""
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
        return not Path("/proc").is_dir()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start


def stop_process(pid: int, start: str | None, grace: float = 10.0) -> bool:
    """SIGTERM ``pid`` (if it is still the process recorded), wait ``grace`` s, then SIGKILL.

    Returns
    -------
    bool
        True if the process had to be signalled.
    """
    if not alive(pid, start):
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
    for _ in range(250):
        if not alive(pid, start):
            break
        time.sleep(0.02)
    return True
