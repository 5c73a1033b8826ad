"""A job's ``requirements.txt``, installed beside (never into) its runtime."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from .._home import home_dir
from ..errors import RuntimeBuildError
from .base import Runtime
from .build import Progress, locked_entry, run_uv

__all__ = ["requirements_overlay"]

_DONE = ".fedsage-overlay-complete"


def _install(runtime: Runtime, folder: Path, what: str) -> None:
    """Install what pip would add to the runtime, but into ``folder``.

    A dry run against the runtime itself decides the set, so packages the runtime
    already satisfies are kept (as ``pip install -r`` in the image keeps them); only
    the additions and upgrades are installed, without dependencies, into the folder.
    """
    common = ["--python", str(runtime.python)]
    plan = run_uv(
        ["pip", "install", "--dry-run", *common, "-r", str(folder / "requirements.txt")],
        cwd=folder.parent,
        what=what,
    )
    wanted = [
        line.strip()[2:].strip()
        for line in (plan.stdout + plan.stderr).splitlines()
        if line.strip().startswith("+ ")
    ]
    if not wanted:
        return
    (folder / "resolved.txt").write_text("\n".join(wanted) + "\n")
    run_uv(
        [
            "pip",
            "install",
            "--quiet",
            *common,
            "--target",
            str(folder),
            "--no-deps",
            "--compile-bytecode",
            "-r",
            str(folder / "resolved.txt"),
        ],
        cwd=folder.parent,
        what=what,
    )
    (folder / "resolved.txt").unlink()


def requirements_overlay(
    runtime: Runtime, requirements: Path, *, progress: Progress | None = None
) -> Path:
    """Install ``requirements`` for ``runtime`` into a cached folder and return it.

    Packages the runtime already satisfies are not installed again (as with
    ``pip install -r`` in the image); additions and upgrades land in the overlay.
    The folder goes first on ``PYTHONPATH``; it is cached per (runtime, file content)
    under ``FEDSAGE_HOME/overlays/`` and built in a temporary folder renamed into place
    under a file lock.

    Parameters
    ----------
    runtime : Runtime
        The runtime whose interpreter the packages are installed for.
    requirements : pathlib.Path
        A pip ``requirements.txt``.
    progress : callable, optional
        Called as ``progress(message, fraction_or_None)``.

    Raises
    ------
    RuntimeBuildError
        When uv cannot install the requirements (its error lines are quoted).
    """
    report: Progress = progress or (lambda message, fraction: None)
    requirements = Path(requirements)
    try:
        content = requirements.read_bytes()
    except OSError as exc:
        raise RuntimeBuildError(f"cannot read the requirements file {requirements}: {exc}") from exc
    runtime_key = runtime.spec_hash or f"{runtime.framework_version}:{runtime.python}"
    digest = hashlib.sha256(runtime_key.encode() + b"\0" + content).hexdigest()[:16]
    root = home_dir("overlays")
    name = f"{runtime.framework_version}-{digest}"
    target = root / name
    if (target / _DONE).exists():
        return target
    with locked_entry(root, name, report):
        if (target / _DONE).exists():
            return target
        for stale in root.glob(f".build-{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".build-{name}-{os.getpid()}-{secrets.token_hex(3)}"
        tmp.mkdir()
        report(f"installing {requirements.name} for {runtime.framework_version}", None)
        try:
            (tmp / "requirements.txt").write_bytes(content)
            what = f"installing {requirements} for the {runtime.framework_version} runtime"
            try:
                _install(runtime, tmp, what)
            except RuntimeBuildError as exc:
                raise RuntimeBuildError(
                    f"{exc}\nFix the requirements file {requirements} and run again."
                ) from None
            (tmp / "requirements.txt").unlink()
            (tmp / _DONE).write_text(str(requirements) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report(f"{requirements.name} installed", 1.0)
    return target
