"""Log helpers: notices given once per process, and reading a log file as it grows."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["announce_once", "follow_file"]

logger = logging.getLogger("fedsage")

_announced: set[str] = set()
_FOLLOW_POLL = 0.25


def announce_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is announced in this process."""
    if key not in _announced:
        _announced.add(key)
        logger.warning(message)


def follow_file(path: Path, *, follow: bool = False) -> Iterator[str]:
    """Yield the lines of ``path`` (without line ends); with ``follow``, wait for more.

    A missing file yields nothing (a server that has not written yet); with ``follow``
    the generator runs until the caller stops iterating.
    """
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return
    with handle:
        pending = ""
        while True:
            chunk = handle.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending.rstrip("\n")
                    pending = ""
                continue
            if not follow:
                if pending:
                    yield pending
                return
            time.sleep(_FOLLOW_POLL)
