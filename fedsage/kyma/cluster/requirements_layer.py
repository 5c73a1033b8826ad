"""The requirements layer: the code's ``requirements.txt`` installed for the image's Python.

SageMaker's images install ``requirements.txt`` when the server starts, which needs
network access to PyPI from the pod.  fedsage instead resolves and installs the
requirements on the deploying machine, with ``uv``, for the image's Python minor and
platform (wheels only: nothing is compiled, and a wheel built for the wrong platform
is never picked), and ships them as one more image layer under
:data:`REQUIREMENTS_DIR`, which the image config puts on ``PYTHONPATH``.

What the image already has is left out, in two steps:

1. ``uv pip compile`` resolves the requirements with the image's lock (the runtime
   spec's ``packages``, see :func:`fedsage.runtimes.catalog.load_spec`) as
   **constraints**: a requirement may pull in a package the image has only at the
   image's version, and one that conflicts with the image (``numpy==2.0.0`` on a
   ``numpy==1.19.2`` image) fails to resolve.
2. The resolved pins that are in the lock are dropped (the image has exactly those
   versions); the rest are installed with ``uv pip install --target --no-deps``.

Installed console scripts (``bin/``) are left out: their shebangs name the deploying
machine's interpreter.  A built layer is cached under
``fedsage_home()/kyma-layers/`` per framework version, platform and requirement lines,
so a re-deploy re-uses the same blob (and the registry's ``HEAD`` check skips it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import DeploymentError
from .layers import Layer, build_layer, sha256_file

__all__ = [
    "PLATFORMS",
    "REQUIREMENTS_DIR",
    "build_requirements_layer",
    "pythonpath_env",
]

logger = logging.getLogger(__name__)

REQUIREMENTS_DIR = "/opt/fedsage/requirements"
# Image platform -> uv's --python-platform (manylinux2014 = glibc 2.17, which every
# SageMaker scikit-learn image satisfies).
PLATFORMS = {
    "linux/amd64": "x86_64-manylinux2014",
    "linux/arm64": "aarch64-manylinux2014",
}
# Bumped whenever the recipe changes in a way that changes the layer.
_RECIPE = 1
_TIMEOUT = 600.0
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)")
_SIMPLE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:===?\s*([^\s;,]+))?$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _uv_message(stderr: str) -> str:
    """uv's error text without its chatter (interpreter discovery, progress)."""
    keep = [
        line
        for line in stderr.strip().splitlines()
        if line.strip() and not line.startswith(("Using CPython", "Using Python", "Resolved "))
    ]
    return "\n".join(keep) or stderr.strip() or "(no message)"


def _run_uv(args: list[str], *, source: str, what: str, cwd: Path | None) -> None:
    try:
        done = subprocess.run(
            [_uv(), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeploymentError(
            f"{source}: uv did not finish {what} within {_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        raise DeploymentError(
            f"{source}: cannot {what} for the image (wheels only, pinned to the image's "
            f"packages); uv says:\n{_uv_message(done.stderr)}"
        )


def _cache_key(
    requirements: Sequence[str], framework_version: str, python: str, platform: str, lock: Any
) -> str:
    body = json.dumps(
        {
            "recipe": _RECIPE,
            "framework_version": framework_version,
            "python": python,
            "platform": platform,
            "lock": lock,
            "requirements": list(requirements),
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _cached(tar: Path, meta: Path) -> Layer | None:
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        if not tar.is_file() or sha256_file(tar) != (info["digest"], info["size"]):
            return None
        return Layer(path=tar, digest=info["digest"], diff_id=info["diff_id"], size=info["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _not_in_image(requirements: Sequence[str], image: Mapping[str, str]) -> list[str]:
    """Drop plain lines (``name`` or ``name==<the image's version>``) the image satisfies.

    The image has its whole dependency tree, so nothing needs resolving for them; and
    some image packages exist only as sdists (``retrying==1.3.3``), which a wheels-only
    resolution could not even read.
    """
    kept = []
    for line in requirements:
        simple = _SIMPLE.match(line)
        if simple:
            version = image.get(_normalize(simple.group(1)))
            if version is not None and simple.group(2) in (None, version):
                continue
        kept.append(line)
    return kept


def _resolve_and_install(
    requirements: Sequence[str],
    lock: Mapping[str, str],
    *,
    python: str,
    platform: str,
    work: Path,
    target: Path,
    source: str,
    cwd: Path | None,
) -> list[str]:
    """Install what the image lacks into ``target``; return the installed pins."""
    image = {_normalize(name): version for name, version in lock.items()}
    requirements = _not_in_image(requirements, image)
    if not requirements:
        return []
    common = ["--python-version", python, "--python-platform", platform]
    common += ["--only-binary", ":all:", "--quiet"]
    wanted = work / "requirements.in"
    wanted.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
    constraints = work / "image-constraints.txt"
    constraints.write_text(
        "".join(f"{name}=={version}\n" for name, version in sorted(lock.items())),
        encoding="utf-8",
    )
    resolved = work / "resolved.txt"
    _run_uv(
        [
            "pip",
            "compile",
            *common,
            "--constraint",
            str(constraints),
            "--no-header",
            "--no-annotate",
            "--output-file",
            str(resolved),
            str(wanted),
        ],
        source=source,
        what="resolve the requirements",
        cwd=cwd,
    )
    missing = []
    for raw in resolved.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")):
            continue
        pin = _PIN.match(line)
        if pin and image.get(_normalize(pin.group(1))) == pin.group(3):
            continue  # the image has this exact version
        missing.append(line)
    if not missing:
        return []
    to_install = work / "install.txt"
    to_install.write_text("".join(f"{line}\n" for line in missing), encoding="utf-8")
    _run_uv(
        ["pip", "install", *common, "--target", str(target), "--no-deps", "-r", str(to_install)],
        source=source,
        what="install the requirements",
        cwd=cwd,
    )
    shutil.rmtree(target / "bin", ignore_errors=True)  # shebangs of this machine
    return missing


def build_requirements_layer(
    requirements: Sequence[str],
    framework_version: str,
    *,
    platform: str = "linux/amd64",
    source: str = "requirements.txt",
    cwd: Path | None = None,
    cache_dir: Path | None = None,
) -> Layer | None:
    """Install ``requirements`` for the image of ``framework_version`` into a layer.

    Parameters
    ----------
    requirements : sequence of str
        Requirement lines (:attr:`fedsage.kyma.cluster.bundle.Bundle.requirements`).
    framework_version : str
        A supported SageMaker scikit-learn version: its spec gives the image's Python
        ``X.Y`` and its lock (the packages the image already has).
    platform : str, default="linux/amd64"
        The image platform (a key of :data:`PLATFORMS`).
    source : str, default="requirements.txt"
        How error messages name the requirement file.
    cwd : pathlib.Path, optional
        Folder relative paths in the requirement lines are resolved from (the code).
    cache_dir : pathlib.Path, optional
        Default ``fedsage_home()/kyma-layers``.

    Returns
    -------
    Layer or None
        The layer (files under :data:`REQUIREMENTS_DIR`), or ``None`` when the image
        already has every requirement.

    Raises
    ------
    DeploymentError
        Naming ``source`` and quoting uv, when the requirements do not resolve with
        the image's pins, a package has no wheel for the image's Python and platform,
        or the index cannot be reached.
    ConfigurationError
        For an unknown framework version (or ``"host"``, which has no image).
    """
    from ...runtimes.catalog import load_spec

    if platform not in PLATFORMS:
        raise DeploymentError(
            f"no wheel platform known for image platform {platform!r}; "
            f"known: {', '.join(PLATFORMS)}"
        )
    spec = load_spec(framework_version).exact
    lines = [line.strip() for line in requirements if line.strip()]
    if not lines:
        return None
    key = _cache_key(lines, framework_version, spec.python, platform, spec.packages)
    if cache_dir is None:
        from ..._home import fedsage_home

        cache_dir = fedsage_home() / "kyma-layers"  # not under kyma/, where deployments live
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"requirements-{framework_version}-{key[:16]}"
    tar, meta = cache_dir / f"{stem}.tar.gz", cache_dir / f"{stem}.json"
    none_needed = cache_dir / f"{stem}.none"
    if none_needed.is_file():
        return None
    layer = _cached(tar, meta)
    if layer is not None:
        logger.info("re-using the requirements layer %s (%s)", tar, layer.digest)
        return layer
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache_dir) as tmp:
        work = Path(tmp)
        target = work / "target"
        target.mkdir()
        installed = _resolve_and_install(
            lines,
            spec.packages,
            python=spec.python,
            platform=PLATFORMS[platform],
            work=work,
            target=target,
            source=source,
            cwd=cwd,
        )
        if not installed:
            none_needed.write_text("the image has every requirement\n", encoding="utf-8")
            logger.info("%s: the image already has every requirement", source)
            return None
        built = build_layer([(target, REQUIREMENTS_DIR)], work / "layer.tar.gz")
        os.replace(built.path, tar)  # same folder: atomic
        layer = Layer(path=tar, digest=built.digest, diff_id=built.diff_id, size=built.size)
        meta.write_text(
            json.dumps(
                {
                    "digest": layer.digest,
                    "diff_id": layer.diff_id,
                    "size": layer.size,
                    "framework_version": framework_version,
                    "python": spec.python,
                    "platform": platform,
                    "installed": installed,
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    logger.info("built the requirements layer %s: %s", tar, ", ".join(installed))
    return layer


def pythonpath_env(base_config: Mapping[str, Any]) -> dict[str, str]:
    """``{"PYTHONPATH": ...}`` for :func:`fedsage.kyma.cluster.image.plan_image`.

    :data:`REQUIREMENTS_DIR` is appended to the base config's ``PYTHONPATH`` if it
    has one (and not added twice).
    """
    run = base_config.get("config") or {}
    current = ""
    for item in run.get("Env") or []:
        key, _, value = item.partition("=")
        if key == "PYTHONPATH":
            current = value
    parts = [part for part in current.split(":") if part]
    if REQUIREMENTS_DIR not in parts:
        parts.append(REQUIREMENTS_DIR)
    return {"PYTHONPATH": ":".join(parts)}
