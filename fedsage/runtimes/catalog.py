"""The supported ``framework_version`` values and their locked package sets.

Each version's spec is data, ``specs/<version>.json``, produced from ``specs/inputs.json``
by ``python -m fedsage.runtimes.specs.lock``: the image's Python minor and an exact
lock of every distribution in it, plus a *fallback* lock for a newer Python used when
the image's Python is not on the machine.
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
    "SUPPORTED_VERSIONS",
    "RuntimeSpec",
    "check_framework_version",
    "load_spec",
]

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


def check_framework_version(value: str, param: str = "framework_version") -> str:
    """Return ``value`` if it names a supported runtime, else raise.

    Parameters
    ----------
    value : str
        A SageMaker scikit-learn ``framework_version`` or ``"host"``.
    param : str
        The parameter name used in the message.

    Raises
    ------
    ConfigurationError
        Naming every supported value.
    """
    if isinstance(value, str) and (value in SUPPORTED_VERSIONS or value == HOST):
        return value
    choices = ", ".join(repr(v) for v in (*SUPPORTED_VERSIONS, HOST))
    raise ConfigurationError(
        f"{param}={value!r} is not a supported scikit-learn framework version; "
        f"use one of {choices} (default {DEFAULT_FRAMEWORK_VERSION!r}; "
        f"{HOST!r} runs in fedsage's own environment)"
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
    """

    framework_version: str
    python: str
    packages: dict[str, str]
    approximate: bool = False
    image_python: str = ""
    binary_only: tuple[str, ...] = BINARY_ONLY
    verify: tuple[str, ...] = field(default=())

    @property
    def spec_hash(self) -> str:
        """A stable digest of everything that decides the build's result."""
        body = json.dumps(
            {
                "recipe": _RECIPE,
                "framework_version": self.framework_version,
                "python": self.python,
                "packages": self.packages,
                "approximate": self.approximate,
                "binary_only": sorted(self.binary_only),
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def name(self) -> str:
        """The cache entry's folder name, ``<version>-<hash12>``."""
        return f"{self.framework_version}-{self.spec_hash[:12]}"

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
        }
        return tuple(module for dist, module in wanted.items() if dist in self.packages)

    def requirements_text(self) -> str:
        """The lock as a ``requirements.txt`` body."""
        return "".join(f"{name}=={version}\n" for name, version in sorted(self.packages.items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (stored in each runtime's manifest)."""
        return {
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


@cache
def load_spec(framework_version: str) -> VersionSpecs:
    """Read the committed spec of a supported version.

    Raises
    ------
    ConfigurationError
        For an unknown version (see :func:`check_framework_version`) or ``"host"``.
    """
    check_framework_version(framework_version)
    if framework_version == HOST:
        raise ConfigurationError("the host runtime has no spec; it is fedsage's own environment")
    doc = json.loads((_SPECS / f"{framework_version}.json").read_text())
    exact = RuntimeSpec(
        framework_version=framework_version,
        python=doc["python"],
        packages=doc["packages"],
        image_python=doc.get("image_python", ""),
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
            )
        )
    return VersionSpecs(exact, tuple(fallbacks))
