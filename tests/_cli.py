"""Run the ``fedsage`` command line in this process, as a test would run it in a shell."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedsage.cli import main


@dataclass(frozen=True)
class Result:
    """What one command did: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr interleaved, as a terminal shows them


class _Tee(io.StringIO):
    """A stream that also copies what it is given into a shared one."""

    def __init__(self, both: io.StringIO) -> None:
        super().__init__()
        self._both = both

    def write(self, text: str) -> int:
        self._both.write(text)
        return super().write(text)


def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Result:
    """Run ``fedsage ARGS`` with ``main``; streams and environment are restored after.

    ``env`` sets variables for the run (``None`` removes one).
    """
    both = io.StringIO()
    out, err = _Tee(both), _Tee(both)
    saved_env = {key: os.environ.get(key) for key in env or {}}
    saved_streams = sys.stdout, sys.stderr
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.stdout, sys.stderr = out, err
        code = main(list(args))
    finally:
        sys.stdout, sys.stderr = saved_streams
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Result(code, out.getvalue(), err.getvalue(), both.getvalue())
