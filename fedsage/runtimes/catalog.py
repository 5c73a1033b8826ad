"""The supported frameworks and ``framework_version`` values, and their locked package sets.

A runtime's identity is its framework (``scikit-learn``, the default, or ``xgboost``)
plus the image's ``framework_version``: the two frameworks' images share version names
(``1.2-1``, ``1.0-1``), so the framework is part of every spec, hash and folder name of
a non-scikit-learn runtime.  scikit-learn specs, hashes and folder names are the ones
they always were, so existing caches stay valid.

Each version's spec is data, ``specs/<version>.json`` (``specs/<framework>-<version>.json``
for other frameworks), produced from ``specs/inputs.json`` by
``python -m fedsage.runtimes.specs.lock``: the image's Python minor and an exact lock of
every distribution in it, plus a *fallback* lock for a newer Python used when the
image's Python is not on the machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .base import HOST

__all__ = [
    "DEFAULT_FRAMEWORK_VERSION",
    "FRAMEWORKS",
    "SKLEARN",
    "SUPPORTED_VERSIONS",
    "XGBOOST",
    "XGBOOST_VERSIONS",
    "RuntimeSpec",
    "check_framework",
    "check_framework_version",
    "load_spec",
    "supported_versions",
]

SKLEARN = "scikit-learn"
XGBOOST = "xgboost"
FRAMEWORKS: tuple[str, ...] = (SKLEARN, XGBOOST)

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.20.0",
    "0.23-1",
    "1.0-1",
    "1.2-1",
    "1.4-2",
    "1.4-2-py312",
    "1.9-0",
)
DEFAULT_FRAMEWORK_VERSION = "0.23-1"
# The SageMaker XGBoost images fedsage rebuilds (reference/xgboost-builtin.md section 1).
XGBOOST_VERSIONS: tuple[str, ...] = ("1.7-1", "3.0-5")
_VERSIONS = {SKLEARN: SUPPORTED_VERSIONS, XGBOOST: XGBOOST_VERSIONS}

_SPECS = Path(__file__).parent / "specs"
# Bumped whenever the build recipe changes in a way that changes the result.
_RECIPE = 1
# Never compiled from source: a source build of these takes minutes.  The lock tool
# resolves with the same rule, so it picks releases that have wheels for the Python.
BINARY_ONLY = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "pyarrow",
    "gevent",
    "greenlet",
    "zope-interface",
    "cryptography",
    "cffi",
    "bcrypt",
    "pynacl",
)


def check_framework(value: str, param: str = "framework") -> str:
    """Return ``value`` if it names a framework fedsage has runtimes for, else raise.

    Parameters
    ----------
    value : str
        ``"scikit-learn"`` or ``"xgboost"``.
    param : str
        The parameter name used in the message.

    Raises
    ------
    ConfigurationError
        Naming every supported framework.
    """
    if isinstance(value, str) and value in FRAMEWORKS:
        return value
    choices = ", ".join(repr(f) for f in FRAMEWORKS)
    raise ConfigurationError(
        f"{param}={value!r} is not a supported framework; use one of {choices}"
    )


def supported_versions(framework: str = SKLEARN) -> tuple[str, ...]:
    """The ``framework_version`` values of ``framework``, oldest first.

    Raises
    ------
    ConfigurationError
        For an unknown framework.
    """
    return _VERSIONS[check_framework(framework)]


def check_framework_version(
    value: str, param: str = "framework_version", framework: str = SKLEARN
) -> str:
    """Return ``value`` if it names a supported runtime of ``framework``, else raise.

    Parameters
    ----------
    value : str
        A SageMaker ``framework_version`` of the framework's images; for scikit-learn
        also ``"host"``.
    param : str
        The parameter name used in the message.
    framework : str
        ``"scikit-learn"`` (default) or ``"xgboost"``.

    Raises
    ------
    ConfigurationError
        Naming every supported value.
    """
    versions = supported_versions(framework)
    if framework == SKLEARN:
        if isinstance(value, str) and (value in versions or value == HOST):
            return value
        choices = ", ".join(repr(v) for v in (*versions, HOST))
        raise ConfigurationError(
            f"{param}={value!r} is not a supported scikit-learn framework version; "
            f"use one of {choices} (default {DEFAULT_FRAMEWORK_VERSION!r}; "
            f"{HOST!r} runs in fedsage's own environment)"
        )
    if isinstance(value, str) and value in versions:
        return value
    choices = ", ".join(repr(v) for v in versions)
    hint = ""
    if value in ("latest", "1", "0.72"):
        hint = (
            f" ({value!r} is SageMaker's deprecated XGBoost 0.72 image, which fedsage does "
            "not rebuild; AWS advises against it too)"
        )
    elif value == HOST:
        hint = f" ({HOST!r} exists for scikit-learn only)"
    raise ConfigurationError(
        f"{param}={value!r} is not a supported {framework} framework version{hint}; "
        f"use one of {choices}"
    )


@dataclass(frozen=True)
class RuntimeSpec:
    """One installable package set: a Python minor plus an exact lock.

    Attributes
    ----------
    framework_version : str
        The version it stands for (or any name, for tests).
    python : str
        Python ``X.Y`` to build it on.
    packages : dict
        Distribution name -> exact version; installed with ``--no-deps``.
    approximate : bool
        True for a fallback set on a Python other than the image's.
    image_python : str
        The Python the real image has, for the record.
    binary_only : tuple of str
        Distributions that must come from wheels.
    verify : tuple of str
        Modules imported to verify a build (defaults from the packages).
    framework : str
        ``"scikit-learn"`` (default) or ``"xgboost"``.
    """

    framework_version: str
    python: str
    packages: dict[str, str]
    approximate: bool = False
    image_python: str = ""
    binary_only: tuple[str, ...] = BINARY_ONLY
    verify: tuple[str, ...] = field(default=())
    framework: str = SKLEARN

    @property
    def spec_hash(self) -> str:
        """A stable digest of everything that decides the build's result."""
        fields: dict[str, Any] = {
            "recipe": _RECIPE,
            "framework_version": self.framework_version,
            "python": self.python,
            "packages": self.packages,
            "approximate": self.approximate,
            "binary_only": sorted(self.binary_only),
        }
        # scikit-learn hashes keep the fields they had before frameworks existed, so
        # runtimes already in a cache are found again.
        if self.framework != SKLEARN:
            fields["framework"] = self.framework
        body = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def label(self) -> str:
        """``<version>`` for scikit-learn, ``<framework>-<version>`` otherwise."""
        if self.framework == SKLEARN:
            return self.framework_version
        return f"{self.framework}-{self.framework_version}"

    @property
    def name(self) -> str:
        """The cache entry's folder name, ``<label>-<hash12>``."""
        return f"{self.label}-{self.spec_hash[:12]}"

    @property
    def verify_modules(self) -> tuple[str, ...]:
        """Modules whose import proves the runtime works."""
        if self.verify:
            return self.verify
        wanted = {
            "scikit-learn": "sklearn",
            "numpy": "numpy",
            "scipy": "scipy",
            "pandas": "pandas",
            "joblib": "joblib",
            "pyarrow": "pyarrow",
            "sagemaker-training": "sagemaker_training",
            "sagemaker-containers": "sagemaker_containers.beta.framework",
            "flask": "flask",
            "setuptools": "pkg_resources",
            "xgboost": "xgboost",
        }
        return tuple(module for dist, module in wanted.items() if dist in self.packages)

    def requirements_text(self) -> str:
        """The lock as a ``requirements.txt`` body."""
        return "".join(f"{name}=={version}\n" for name, version in sorted(self.packages.items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (stored in each runtime's manifest)."""
        return {
            "framework": self.framework,
            "framework_version": self.framework_version,
            "python": self.python,
            "packages": dict(self.packages),
            "approximate": self.approximate,
            "image_python": self.image_python,
            "binary_only": list(self.binary_only),
            "verify": list(self.verify),
        }


@dataclass(frozen=True)
class VersionSpecs:
    """The exact spec of a framework version and its fallbacks, best first."""

    exact: RuntimeSpec
    fallbacks: tuple[RuntimeSpec, ...]


def spec_label(framework_version: str, framework: str = SKLEARN) -> str:
    """The name of a version's spec file and cache entries (see :attr:`RuntimeSpec.label`)."""
    if framework == SKLEARN:
        return framework_version
    return f"{framework}-{framework_version}"


@cache
def load_spec(framework_version: str, framework: str = SKLEARN) -> VersionSpecs:
    """Read the committed spec of a supported version of ``framework``.

    Raises
    ------
    ConfigurationError
        For an unknown framework or version (see :func:`check_framework_version`) or
        ``"host"``.
    """
    check_framework_version(framework_version, framework=framework)
    if framework_version == HOST:
        raise ConfigurationError("the host runtime has no spec; it is fedsage's own environment")
    doc = json.loads((_SPECS / f"{spec_label(framework_version, framework)}.json").read_text())
    exact = RuntimeSpec(
        framework_version=framework_version,
        python=doc["python"],
        packages=doc["packages"],
        image_python=doc.get("image_python", ""),
        framework=framework,
    )
    fallbacks = []
    for fallback in (doc.get("fallback"),) if doc.get("fallback") else ():
        fallbacks.append(
            RuntimeSpec(
                framework_version=framework_version,
                python=fallback["python"],
                packages=fallback["packages"],
                approximate=True,
                image_python=exact.image_python,
                framework=framework,
            )
        )
    return VersionSpecs(exact, tuple(fallbacks))
