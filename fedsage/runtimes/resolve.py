"""``framework_version`` -> a ready :class:`~fedsage.runtimes.base.Runtime`."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from ..errors import RuntimeBuildError
from .base import HOST, Runtime, host_runtime
from .build import Progress, build_runtime, load_built, runtimes_root
from .catalog import SKLEARN, RuntimeSpec, check_framework_version, load_spec
from .discovery import CANDIDATES_ENV, find_interpreter

logger = logging.getLogger(__name__)

__all__ = ["STRICT_ENV", "ApproximateRuntimeWarning", "cached_runtime", "resolve_runtime"]

STRICT_ENV = "FEDSAGE_RUNTIME_STRICT"


class ApproximateRuntimeWarning(UserWarning):
    """A runtime stands in for an image whose exact Python is not on this machine."""


def _strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _missing_python(spec: RuntimeSpec) -> str:
    how = (
        f"install it (pyenv install {spec.python}, or uv python install {spec.python}, "
        f"or your system's python{spec.python} package)"
    )
    if os.environ.get(CANDIDATES_ENV) is not None:
        how += f", or add it to {CANDIDATES_ENV}"
    image = spec.framework_version if spec.framework == SKLEARN else spec.label
    return f"Python {spec.python} (the {image} image's Python) was not found; {how}"


def _warn_approximate(exact: RuntimeSpec, runtime: Runtime) -> None:
    reported: tuple[str, ...] = ("scikit-learn", "numpy", "pandas", "scipy")
    if exact.framework != SKLEARN:
        reported = (exact.framework, *reported)
    versions = ", ".join(
        f"{dist} {runtime.packages.get(dist, '?')} (image: {exact.packages.get(dist, '-')})"
        for dist in reported
    )
    what = "" if exact.framework == SKLEARN else f"{exact.framework} "
    message = (
        f"{what}framework_version {exact.framework_version!r}: Python {exact.python} is not on "
        f"this machine, so the job runs on an APPROXIMATE runtime: Python {runtime.python_version} "
        f"with {versions}. Models it writes may not load in the real image. Install Python "
        f"{exact.python} for the exact runtime, or set {STRICT_ENV}=1 to make this an error."
    )
    logger.info("approximate runtime %s for %s", runtime.root, exact.framework_version)
    warnings.warn(message, ApproximateRuntimeWarning, stacklevel=3)


def resolve_runtime(
    framework_version: str,
    *,
    framework: str = SKLEARN,
    strict: bool | None = None,
    progress: Progress | None = None,
) -> Runtime:
    """Return the runtime of ``framework_version``, building it on first use.

    A runtime already in the cache is returned from its manifest without starting a
    process.  Otherwise the image's Python is looked for (see
    :mod:`fedsage.runtimes.discovery`) and the runtime built from its locked spec.

    Parameters
    ----------
    framework_version : str
        A supported SageMaker version of ``framework``'s images, or (scikit-learn only)
        ``"host"`` for fedsage's own environment.
    framework : str, default="scikit-learn"
        ``"scikit-learn"`` or ``"xgboost"`` (the SageMaker XGBoost images, for the
        built-in algorithm and XGBoost script mode).
    strict : bool, optional
        When the image's Python is missing: ``True`` raises, ``False`` builds an
        approximate runtime on the nearest available Python (with a loud warning).
        Default: ``FEDSAGE_RUNTIME_STRICT``.
    progress : callable, optional
        Called as ``progress(message, fraction_or_None)`` during a build.

    Returns
    -------
    Runtime

    Raises
    ------
    ConfigurationError
        For an unknown framework or version.
    RuntimeBuildError
        When no usable interpreter exists, in strict mode without the exact one, or
        when the build fails.
    """
    check_framework_version(framework_version, framework=framework)
    if framework_version == HOST:
        return host_runtime()
    specs = load_spec(framework_version, framework)
    root = runtimes_root()
    runtime = load_built(specs.exact, root)
    if runtime is not None:
        return runtime
    built_fallbacks = [load_built(fallback, root) for fallback in specs.fallbacks]
    # With an approximate runtime built, a warm resolve must not start ``uv python find``.
    python = find_interpreter(specs.exact.python, allow_uv=not any(built_fallbacks))
    if python is not None:
        return build_runtime(specs.exact, python, progress=progress, root=root)
    if strict is None:
        strict = _strict_from_env()
    if strict:
        raise RuntimeBuildError(
            f"{_missing_python(specs.exact)}. Strict mode ({STRICT_ENV} or strict=True) "
            "refuses an approximate runtime."
        )
    for fallback, runtime in zip(specs.fallbacks, built_fallbacks, strict=True):
        if runtime is None:
            fb_python = find_interpreter(fallback.python, allow_uv=True)
            if fb_python is None:
                continue
            runtime = build_runtime(fallback, fb_python, progress=progress, root=root)
        _warn_approximate(specs.exact, runtime)
        return runtime
    wanted = ", ".join(sorted({spec.python for spec in (specs.exact, *specs.fallbacks)}))
    raise RuntimeBuildError(
        f"{_missing_python(specs.exact)}; no Python for an approximate runtime either "
        f"(needs one of {wanted})."
    )


def cached_runtime(framework_version: str, framework: str = SKLEARN) -> Runtime | None:
    """The runtime :func:`resolve_runtime` would return without a build, else ``None``.

    Never starts a process (interpreters are looked for by file name only), so a job can
    be started at once and left to build its runtime in its own process.  An approximate
    runtime counts when it is built and the image's own Python is not on the machine.
    """
    if check_framework_version(framework_version, framework=framework) == HOST:
        return host_runtime()
    specs = load_spec(framework_version, framework)
    root = runtimes_root()
    runtime = load_built(specs.exact, root)
    if runtime is not None:
        return runtime
    if _strict_from_env() or find_interpreter(specs.exact.python) is not None:
        return None  # resolve_runtime would build the exact runtime (or refuse)
    for fallback in specs.fallbacks:
        runtime = load_built(fallback, root)
        if runtime is not None:
            return runtime
        if find_interpreter(fallback.python) is not None:
            return None  # this approximation would be built first
    return None


def runtime_path(framework_version: str, framework: str = SKLEARN) -> Path | None:
    """The folder of a built runtime of ``framework_version`` (exact first), or ``None``."""
    if check_framework_version(framework_version, framework=framework) == HOST:
        return None
    specs = load_spec(framework_version, framework)
    for spec in (specs.exact, *specs.fallbacks):
        runtime = load_built(spec)
        if runtime is not None:
            return runtime.root
    return None
