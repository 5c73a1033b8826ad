"""Building, finding and removing runtimes in the cache folder.

A runtime is a relocatable uv virtualenv at ``<root>/<version>-<hash12>``.  It is
built in a hidden temporary folder beside its final place, verified (imports and
exact versions), given a manifest, and only then renamed into place, all under a
per-entry file lock: a folder with that name is always complete, two processes
build it once, and leftovers of an interrupted build are removed by the next build.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock
import uv

from .._home import home_dir, write_json_atomic
from ..errors import RuntimeBuildError
from .base import Runtime, image_env
from .catalog import SKLEARN, RuntimeSpec
from .discovery import probe_interpreter, which_compiler

logger = logging.getLogger(__name__)

__all__ = [
    "BUILD_LOG",
    "MANIFEST",
    "RUNTIMES_DIR_ENV",
    "Progress",
    "build_runtime",
    "built_runtimes",
    "load_built",
    "locked_entry",
    "manifest_framework",
    "remove_entry",
    "runtimes_root",
]

Progress = Callable[[str, "float | None"], None]

RUNTIMES_DIR_ENV = "FEDSAGE_RUNTIMES_DIR"
MANIFEST = "fedsage-runtime.json"
LOCK_FILE = "fedsage-lock.txt"
BUILD_LOG = "builds.log"
_TMP_PREFIX = ".build-"
_GARBAGE_PREFIX = ".remove-"
# Locked distributions that exist only as sdists with C extensions in some images.
_COMPILED_FROM_SOURCE = ("sagemaker-training", "sagemaker-containers", "psutil", "markupsafe")
_PROBE = Path(__file__).with_name("_inside") / "probe.py"


def runtimes_root() -> Path:
    """The cache folder: ``FEDSAGE_RUNTIMES_DIR``, else ``FEDSAGE_HOME/runtimes``."""
    raw = os.environ.get(RUNTIMES_DIR_ENV)
    if not raw:
        return home_dir("runtimes")
    root = Path(raw).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def manifest_framework(manifest: dict[str, Any]) -> str:
    """The framework of a built runtime (manifests before frameworks existed: scikit-learn)."""
    return str(manifest.get("framework") or SKLEARN)


def _runtime_from(folder: Path, manifest: dict[str, Any]) -> Runtime:
    framework = manifest_framework(manifest)
    return Runtime(
        framework_version=manifest["framework_version"],
        python=folder / "bin" / "python",
        python_version=manifest["python_version"],
        packages=dict(manifest["packages"]),
        env=image_env(framework),
        approximate=bool(manifest["approximate"]),
        root=folder,
        spec_hash=manifest["spec_hash"],
        framework=framework,
    )


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a built runtime folder, or ``None``."""
    try:
        return dict(json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError):
        return None


def load_built(spec: RuntimeSpec, root: Path | None = None) -> Runtime | None:
    """Return the built runtime of ``spec`` if it is in the cache (no process started)."""
    folder = (root or runtimes_root()) / spec.name
    manifest = read_manifest(folder)
    if manifest is None or not (folder / "bin" / "python").exists():
        return None
    return _runtime_from(folder, manifest)


def built_runtimes(root: Path | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every built runtime folder with its manifest, sorted by name."""
    root = root or runtimes_root()
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        manifest = read_manifest(folder)
        if manifest is not None:
            yield folder, manifest


@contextlib.contextmanager
def locked_entry(root: Path, name: str, report: Progress) -> Iterator[None]:
    """Hold the file lock of cache entry ``name`` under ``root`` (waiting, with a message)."""
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(locks / f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        report(f"waiting for another process that is building {name}", None)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _discard(path: Path) -> None:
    """Remove a folder so that no half of it ever looks usable: rename first, then delete."""
    if not path.exists():
        return
    garbage = path.with_name(f"{_GARBAGE_PREFIX}{path.name}-{secrets.token_hex(4)}")
    os.rename(path, garbage)
    shutil.rmtree(garbage, ignore_errors=True)


def _clean_stale(root: Path, name: str) -> None:
    for stale in root.glob(f"{_TMP_PREFIX}{name}-*"):
        logger.info("removing %s, left by an interrupted build", stale)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(f"{_GARBAGE_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _uv_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX", "UV_PYTHON")
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


def uv_error_lines(stderr: str, limit: int = 25) -> str:
    """The informative lines of a failed uv run (its error, causes and hints)."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    keep = [
        line
        for line in lines
        if not line.lstrip().startswith(
            ("Resolved ", "Prepared ", "Installed ", "Using ", "Audited ")
        )
    ]
    return "\n".join(keep[-limit:])


def run_uv(args: list[str], *, cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    """Run ``uv ARGS``; raise :class:`RuntimeBuildError` quoting uv when it fails."""
    cmd = [uv.find_uv_bin(), *args]
    logger.debug("running %s", " ".join(cmd))
    out = subprocess.run(cmd, cwd=cwd, env=_uv_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeBuildError(f"{what} failed; uv said:\n{uv_error_lines(out.stderr)}")
    return out


def _preflight(spec: RuntimeSpec, python: Path) -> None:
    interpreter = probe_interpreter(python)
    if interpreter is None:
        raise RuntimeBuildError(f"the interpreter {python} does not run; pick another Python")
    if interpreter.minor != spec.python:
        raise RuntimeBuildError(
            f"{python} is Python {interpreter.version}, but {spec.name} needs {spec.python}"
        )
    if not any(dist in spec.packages for dist in _COMPILED_FROM_SOURCE):
        return
    if which_compiler() is None:
        raise RuntimeBuildError(
            f"building the {spec.framework_version} runtime compiles small C extensions "
            "(sagemaker-training, sagemaker-containers, psutil) and needs a C compiler; "
            "install one (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc)"
        )
    if not interpreter.headers:
        raise RuntimeBuildError(
            f"building the {spec.framework_version} runtime needs the C headers of Python "
            f"{interpreter.version} ({interpreter.include}/Python.h is missing); install them "
            f"(Debian/Ubuntu: apt-get install python{spec.python}-dev) or use a pyenv or uv "
            "Python, which ship them"
        )


def _apply_image_fixes(folder: Path, spec: RuntimeSpec) -> list[str]:
    """Apply the patches the images apply; return what was done."""
    done = []
    if tuple(map(int, spec.python.split("."))) >= (3, 10):
        for mapping in folder.glob("lib/python*/site-packages/sagemaker_containers/_mapping.py"):
            text = mapping.read_text()
            fixed = re.sub(r"\bcollections\.Mapping\b", "collections.abc.Mapping", text)
            if fixed != text:
                fixed = re.sub(r"^import collections$", "import collections.abc", fixed, flags=re.M)
                mapping.write_text(fixed)
                for stale in (mapping.parent / "__pycache__").glob("_mapping.*.pyc"):
                    stale.unlink()
                done.append("sagemaker_containers/_mapping.py: collections.abc.Mapping")
    return done


def _verify(folder: Path, spec: RuntimeSpec) -> dict[str, Any]:
    python = folder / "bin" / "python"
    out = subprocess.run(
        [str(python), "-I", str(_PROBE), *spec.verify_modules],
        capture_output=True,
        text=True,
        env={**image_env(spec.framework), "PATH": os.environ.get("PATH", "")},
    )
    if out.returncode != 0:
        raise RuntimeBuildError(f"verifying {spec.name} failed:\n{out.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    problems = [f"import {mod}: {err}" for mod, err in report["imports"].items() if err]
    installed = report["distributions"]
    for dist, version in spec.packages.items():
        got = installed.get(_normalize(dist))
        if got != version:
            problems.append(f"{dist}: locked {version}, installed {got}")
    if not report["python"].startswith(spec.python + "."):
        problems.append(f"Python {report['python']} instead of {spec.python}")
    if problems:
        raise RuntimeBuildError(
            f"the {spec.name} runtime failed verification:\n  " + "\n  ".join(problems)
        )
    return report


def _build_into(folder: Path, spec: RuntimeSpec, python: Path, report: Progress) -> None:
    started = time.monotonic()
    report(f"creating a Python {spec.python} environment", 0.02)
    run_uv(
        ["venv", "--quiet", "--relocatable", "--python", str(python), str(folder)],
        cwd=folder.parent,
        what=f"creating the {spec.name} environment",
    )
    (folder / LOCK_FILE).write_text(spec.requirements_text())
    report(f"installing {len(spec.packages)} locked packages", 0.05)
    binary = [
        arg for dist in spec.binary_only if dist in spec.packages for arg in ("--only-binary", dist)
    ]
    run_uv(
        [
            "pip",
            "install",
            "--quiet",
            "--python",
            str(folder / "bin" / "python"),
            "--no-deps",
            "--compile-bytecode",
            *binary,
            "-r",
            str(folder / LOCK_FILE),
        ],
        cwd=folder.parent,
        what=f"installing the packages of {spec.name}",
    )
    fixes = _apply_image_fixes(folder, spec)
    report("verifying imports and versions", 0.9)
    probe = _verify(folder, spec)
    manifest = {
        "name": spec.name,
        "framework": spec.framework,
        "framework_version": spec.framework_version,
        "spec_hash": spec.spec_hash,
        "approximate": spec.approximate,
        "python_version": probe["python"],
        "base_python": str(python),
        "packages": dict(sorted(probe["distributions"].items())),
        "fixes": fixes,
        "spec": spec.to_dict(),
        "built_at": time.time(),
        "build_seconds": round(time.monotonic() - started, 2),
    }
    write_json_atomic(folder / MANIFEST, manifest)


def build_runtime(
    spec: RuntimeSpec,
    python: Path,
    *,
    progress: Progress | None = None,
    root: Path | None = None,
) -> Runtime:
    """Build ``spec`` with interpreter ``python`` unless it is already built; return it.

    Raises
    ------
    RuntimeBuildError
        When a tool is missing or uv, the fixes or the verification fail; nothing
        usable is left behind.
    """
    report: Progress = progress or (lambda message, fraction: None)
    root = root or runtimes_root()
    target = root / spec.name
    with locked_entry(root, spec.name, report):
        built = load_built(spec, root)
        if built is not None:
            report(f"{spec.name} is ready (built by another process)", 1.0)
            return built
        _clean_stale(root, spec.name)
        _discard(target)  # an entry whose interpreter vanished
        _preflight(spec, python)
        started = time.monotonic()
        tmp = root / f"{_TMP_PREFIX}{spec.name}-{os.getpid()}-{secrets.token_hex(3)}"
        logger.info("building runtime %s with %s in %s", spec.name, python, tmp)
        try:
            _build_into(tmp, spec, python, report)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 2)
        with open(root / BUILD_LOG, "a", encoding="utf-8") as log:
            log.write(
                json.dumps(
                    {
                        "name": spec.name,
                        "pid": os.getpid(),
                        "seconds": seconds,
                        "at": time.time(),
                        "python": sys.version.split()[0],
                    }
                )
                + "\n"
            )
        logger.info("built runtime %s in %.1f s", spec.name, seconds)
        report(f"{spec.name} is ready ({seconds:.0f} s)", 1.0)
    runtime = load_built(spec, root)
    if runtime is None:  # pragma: no cover - renamed into place just above
        raise RuntimeBuildError(f"the runtime {spec.name} vanished right after its build")
    return runtime


def remove_entry(folder: Path, *, progress: Progress | None = None) -> None:
    """Delete one runtime folder under its lock (a job already running keeps its files)."""
    report: Progress = progress or (lambda message, fraction: None)
    with locked_entry(folder.parent, folder.name, report):
        _discard(folder)
