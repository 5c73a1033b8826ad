"""Finding a CPython interpreter of a given minor version on this machine.

Discovery never downloads anything.  It looks, in order, at pyenv's ``versions/``,
uv's managed Pythons, ``pythonX.Y`` on ``PATH`` (skipping pyenv shims, which fail for
versions that are not activated) and, only when asked, ``uv python find``.

``FEDSAGE_PYTHON_CANDIDATES`` (interpreter paths separated by ``os.pathsep``) replaces
all of that with an explicit list, e.g. to limit a test to fedsage's own interpreter.
The version of a listed interpreter is asked once per process (cached by path and
mtime); machine search by file name starts no process until ``uv python find``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import uv

logger = logging.getLogger(__name__)

__all__ = ["CANDIDATES_ENV", "Interpreter", "find_interpreter", "probe_interpreter"]

CANDIDATES_ENV = "FEDSAGE_PYTHON_CANDIDATES"

_PROBE = (
    "import json, os, sys, sysconfig; inc = sysconfig.get_paths()['include']; "
    "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], 'include': inc, "
    "'headers': os.path.exists(os.path.join(inc, 'Python.h')), "
    "'implementation': sys.implementation.name}))"
)
_probe_cache: dict[tuple[str, int], dict[str, object]] = {}


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter found on this machine.

    Attributes
    ----------
    path : pathlib.Path
        The executable.
    version : str
        ``X.Y.Z``.
    include : str
        Its C header folder.
    headers : bool
        Whether ``Python.h`` is there (needed to compile the toolkit's C extensions).
    """

    path: Path
    version: str
    include: str = ""
    headers: bool = True

    @property
    def minor(self) -> str:
        """``X.Y``."""
        return ".".join(self.version.split(".")[:2])


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def probe_interpreter(path: Path) -> Interpreter | None:
    """Ask an interpreter for its version and headers; ``None`` if it does not run.

    Results are cached in this process by resolved path and modification time.
    """
    try:
        real = path.resolve(strict=True)
        key = (str(real), real.stat().st_mtime_ns)
    except OSError:
        return None
    info = _probe_cache.get(key)
    if info is None:
        try:
            out = subprocess.run(
                [str(path), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return None
        info = json.loads(out.stdout)
        _probe_cache[key] = info
    if info.get("implementation") != "cpython":
        return None
    return Interpreter(path, str(info["version"]), str(info["include"]), bool(info["headers"]))


def candidate_paths() -> list[Path] | None:
    """The explicit interpreter list from ``FEDSAGE_PYTHON_CANDIDATES``, or ``None``."""
    raw = os.environ.get(CANDIDATES_ENV)
    if raw is None:
        return None
    return [Path(item).expanduser() for item in raw.split(os.pathsep) if item.strip()]


def _pyenv(minor: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for folder in root.glob(f"{minor}.*"):
        exe = folder / "bin" / f"python{minor}"
        if re.fullmatch(rf"{re.escape(minor)}\.\d+", folder.name) and exe.exists():
            found.append(exe)
    return sorted(found, key=lambda exe: _version_key(exe.parent.parent.name), reverse=True)


def _uv_managed(minor: str) -> list[Path]:
    raw = os.environ.get("UV_PYTHON_INSTALL_DIR")
    root = Path(raw) if raw else Path.home() / ".local" / "share" / "uv" / "python"
    found = [
        folder / "bin" / f"python{minor}"
        for folder in root.glob(f"cpython-{minor}.*-linux-*")
        if (folder / "bin" / f"python{minor}").exists() and "freethreaded" not in folder.name
    ]
    return sorted(found, key=lambda exe: _version_key(exe.parent.parent.name), reverse=True)


def _on_path(minor: str) -> list[Path]:
    found = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(folder) / f"python{minor}"
        if folder and "shims" not in Path(folder).parts and os.access(exe, os.X_OK):
            found.append(exe)
    return found


def _uv_find(minor: str) -> Path | None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        out = subprocess.run(
            [uv.find_uv_bin(), "python", "find", "--system", minor],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


def find_interpreter(
    minor: str, *, candidates: list[Path] | None = None, allow_uv: bool = False
) -> Path | None:
    """Return an interpreter of Python ``minor`` (``"3.7"``), or ``None``.

    Parameters
    ----------
    minor : str
        ``X.Y``.
    candidates : list of pathlib.Path, optional
        Only consider these interpreters.  Default: ``FEDSAGE_PYTHON_CANDIDATES`` when
        set, else the machine search described in the module docstring.
    allow_uv : bool
        Also ask ``uv python find`` (starts a process) when nothing else matched.
    """
    if candidates is None:
        candidates = candidate_paths()
    if candidates is not None:
        for path in candidates:
            found = probe_interpreter(path)
            if found is not None and found.minor == minor:
                return path
        return None
    for search in (_pyenv, _uv_managed, _on_path):
        paths = search(minor)
        if paths:
            return paths[0]
    if allow_uv:
        located = _uv_find(minor)
        if located is not None:
            found = probe_interpreter(located)
            if found is not None and found.minor == minor:
                return located
    return None


def which_compiler() -> str | None:
    """The C compiler a source build will use (``$CC``, ``cc``, ``gcc``), or ``None``."""
    for name in filter(None, (os.environ.get("CC", "").split(" ")[0], "cc", "gcc")):
        path = shutil.which(name)
        if path:
            return path
    return None
