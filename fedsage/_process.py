"""Processes fedsage started (jobs, servers, gateways), found by PID and checked by start time.

The checks by PID themselves live in :mod:`fedsage._pid` (re-exported here), which imports
neither ``dataclasses`` nor ``pathlib``: a model-server supervisor needs them for its whole
life and keeps what it imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._pid import alive, process_start, stop_process

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
