"""fedsage: train scikit-learn models on SAP Datasphere data; serve them on SageMaker or Kyma.

The public names are :class:`DwcSagemaker` (training, deployment and prediction, as in
SAP's fedml-aws) and :class:`DbConnection` (reading data).  Both import lazily, so
``import fedsage`` stays cheap and needs none of the optional extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigurationError,
    DataError,
    DeploymentError,
    EndpointError,
    FedsageError,
    InvocationError,
    MissingExtraError,
    RuntimeBuildError,
    ScoringError,
    StorageError,
    TrainingError,
)

if TYPE_CHECKING:
    from .data import DbConnection
    from .dwc_sagemaker import DwcSagemaker

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DataError",
    "DbConnection",
    "DeploymentError",
    "DwcSagemaker",
    "EndpointError",
    "FedsageError",
    "InvocationError",
    "MissingExtraError",
    "RuntimeBuildError",
    "ScoringError",
    "StorageError",
    "TrainingError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "DwcSagemaker":
        from .dwc_sagemaker import DwcSagemaker

        return DwcSagemaker
    if name == "DbConnection":
        from .data import DbConnection

        return DbConnection
    raise AttributeError(f"module 'fedsage' has no attribute {name!r}")
