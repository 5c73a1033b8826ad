"""What a runtime is: an interpreter, its environment, and the versions it really has."""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HOST", "IMAGE_ENV", "XGBOOST_IMAGE_ENV", "Runtime", "host_runtime", "image_env"]

HOST = "host"

# What a SageMaker scikit-learn image sets in every process (its Dockerfile's ENV lines).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "UTF-8",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "SAGEMAKER_TRAINING_MODULE": "sagemaker_sklearn_container.training:main",
    "SAGEMAKER_SERVING_MODULE": "sagemaker_sklearn_container.serving:main",
}
# The SageMaker XGBoost images set the same process variables, their own modules, and
# the /opt/ml paths that algorithm mode reads (reference/xgboost-builtin.md section 1).
XGBOOST_IMAGE_ENV = {
    **{k: v for k, v in IMAGE_ENV.items() if not k.startswith("SAGEMAKER_")},
    "SAGEMAKER_TRAINING_MODULE": "sagemaker_xgboost_container.training:main",
    "SAGEMAKER_SERVING_MODULE": "sagemaker_xgboost_container.serving:main",
}


def image_env(framework: str = "scikit-learn") -> dict[str, str]:
    """The variables every process of a ``framework`` runtime gets (a fresh copy)."""
    return dict(XGBOOST_IMAGE_ENV if framework == "xgboost" else IMAGE_ENV)


_REPORTED = ("scikit-learn", "numpy", "pandas", "scipy", "joblib")


@dataclass(frozen=True)
class Runtime:
    """An interpreter that jobs and model workers run under.

    Attributes
    ----------
    framework_version : str
        The SageMaker ``framework_version`` it stands for, or ``"host"`` for fedsage's
        own environment.
    python : pathlib.Path
        The interpreter to start.
    python_version : str
        Its ``X.Y.Z`` version.
    packages : dict
        Installed versions of the libraries a script sees (``scikit-learn``, ``numpy`` ...).
    env : dict
        Environment variables every process of this runtime gets.
    approximate : bool
        True when the exact interpreter or library line was not available and a near
        one stands in (see ``docs/runtimes.md``).
    root : pathlib.Path or None
        The runtime's folder in the cache (``None`` for the host runtime).
    spec_hash : str
        Digest of the locked package set it was built from (empty for the host).
    framework : str
        ``"scikit-learn"`` (the default, and the host's) or ``"xgboost"``.
    """

    framework_version: str
    python: Path
    python_version: str
    packages: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    approximate: bool = False
    root: Path | None = None
    spec_hash: str = ""
    framework: str = "scikit-learn"

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready data (paths as strings); see :meth:`from_dict`."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Runtime:
        """The inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["python"] = Path(fields["python"])
        if fields.get("root"):
            fields["root"] = Path(fields["root"])
        return cls(**fields)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary recorded with every job and endpoint."""
        return {
            "Framework": self.framework,
            "FrameworkVersion": self.framework_version,
            "Python": str(self.python),
            "PythonVersion": self.python_version,
            "Packages": dict(self.packages),
            "Approximate": self.approximate,
        }


@functools.cache
def host_runtime() -> Runtime:
    """fedsage's own interpreter and libraries (``framework_version='host'``)."""
    # importlib.metadata costs as much to import as the rest of a short command's start
    # (and the job runner imports this module without ever listing host packages).
    from importlib import metadata

    packages = {}
    for name in _REPORTED:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return Runtime(
        framework_version=HOST,
        python=Path(sys.executable),
        python_version=".".join(map(str, sys.version_info[:3])),
        packages=packages,
        env=dict(IMAGE_ENV),
    )
