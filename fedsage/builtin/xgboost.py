"""SageMaker's built-in XGBoost (algorithm mode), the host side.

A local algorithm-mode training job is an ordinary fedsage job whose program is
:data:`TRAINING_PROGRAM` (``_inside/xgboost_algorithm_train.py``), run under the XGBoost
runtime of the image version, with the image's hyperparameter encoding (plain ``str``
values, :func:`encode_hyperparameters`) and no code channel.  An endpoint serves the
model with fedsage's model worker, loading :data:`SERVING_PROGRAM` from
:data:`SERVING_DIR` as the user module (:func:`serving_env`).

Example
-------
>>> from fedsage.builtin import xgboost as builtin_xgb
>>> builtin_xgb.encode_hyperparameters({"num_round": 10, "eta": 0.2})
{'num_round': '10', 'eta': '0.2'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtimes.catalog import XGBOOST, XGBOOST_VERSIONS, check_framework_version
from . import INSIDE

if TYPE_CHECKING:
    from ..runtimes.base import Runtime
    from ..runtimes.build import Progress

__all__ = [
    "DEFAULT_ACCEPT",
    "FRAMEWORK",
    "MODEL_FILE",
    "SERVING_DIR",
    "SERVING_PROGRAM",
    "TRAINING_PROGRAM",
    "VERSIONS",
    "check_version",
    "encode_hyperparameters",
    "final_metrics",
    "image_name",
    "metric_definitions",
    "pack_serving_code",
    "resolve_runtime",
    "serving_env",
    "training_command",
]

FRAMEWORK = XGBOOST
VERSIONS = XGBOOST_VERSIONS
TRAINING_PROGRAM: Path = INSIDE / "xgboost_algorithm_train.py"
SERVING_DIR: Path = INSIDE
SERVING_PROGRAM = "xgboost_algorithm_serve.py"
MODEL_FILE = "xgboost-model"
# The algorithm's Accept when a request names none (the image's, unlike scikit-learn's JSON).
DEFAULT_ACCEPT = "text/csv"

# The metrics the image declares (validation:<m>), minimised or maximised in tuning.
MAXIMIZED_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map",
    "ndcg", "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro",
    "recall_micro",
)  # fmt: skip
MINIMIZED_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe",
    "mse", "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
)  # fmt: skip
_NUMBER = re.compile(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")


def check_version(framework_version: str, param: str = "framework_version") -> str:
    """Return ``framework_version`` if fedsage has a runtime for that XGBoost image.

    Raises
    ------
    ConfigurationError
        Naming the supported versions (``'latest'`` and ``'1'``, the deprecated 0.72
        image, are explained).
    """
    return check_framework_version(framework_version, param, framework=XGBOOST)


def resolve_runtime(
    framework_version: str, *, strict: bool | None = None, progress: Progress | None = None
) -> Runtime:
    """The XGBoost runtime of an image version, built on first use.

    Parameters
    ----------
    framework_version : str
        ``"1.7-1"`` or ``"3.0-5"``.
    strict, progress
        As for :func:`fedsage.runtimes.resolve_runtime`.

    Returns
    -------
    Runtime

    Raises
    ------
    ConfigurationError
        For an unsupported version.
    RuntimeBuildError
        When the runtime cannot be built.
    """
    from ..runtimes.resolve import resolve_runtime as resolve

    return resolve(
        check_version(framework_version), framework=XGBOOST, strict=strict, progress=progress
    )


def encode_hyperparameters(hyperparameters: Mapping[str, Any] | None) -> dict[str, str]:
    """Hyperparameters as the SDK's ``Estimator`` sends them: ``str(key)`` -> ``str(value)``.

    Built-in algorithms read the raw strings (``"10"``, ``"reg:squarederror"``), unlike
    framework scripts, whose values the SDK JSON-encodes; see
    :func:`fedsage.training.contract.encode_hyperparameters` for those.

    Parameters
    ----------
    hyperparameters : mapping or None

    Returns
    -------
    dict
        Name -> value string, ready for ``hyperparameters.json``.

    Raises
    ------
    ConfigurationError
        For a non-mapping, or when SageMaker's limits are exceeded (100 entries, keys up
        to 256 and values up to 2500 characters).
    """
    from ..training.contract import encode_hyperparameters as encode

    return encode(hyperparameters, plain=True)


def training_command(runtime: Runtime) -> list[str]:
    """The argv of an algorithm-mode job: the runtime's interpreter and the trainer."""
    return [str(runtime.python), str(TRAINING_PROGRAM)]


def serving_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables for a model worker that serves an algorithm-mode model.

    Parameters
    ----------
    env : mapping, optional
        The endpoint's own variables (a user's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``,
        ``SAGEMAKER_INFERENCE_OUTPUT`` ... win over the defaults here).

    Returns
    -------
    dict
        ``env`` plus ``SAGEMAKER_SUBMIT_DIRECTORY``/``SAGEMAKER_PROGRAM`` (fedsage's
        handlers), the image's default Accept (``text/csv``), its reading of a request
        without Content-Type (libsvm) and ``OMP_NUM_THREADS=1``.
    """
    merged = {
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": DEFAULT_ACCEPT,
        "FEDSAGE_DEFAULT_CONTENT_TYPE": "text/libsvm",
        "OMP_NUM_THREADS": "1",
    }
    merged.update(env or {})
    merged["SAGEMAKER_SUBMIT_DIRECTORY"] = str(SERVING_DIR)
    merged["SAGEMAKER_PROGRAM"] = SERVING_PROGRAM
    return merged


def pack_serving_code(dest: Path) -> Path:
    """Write the serving handlers as a ``sourcedir.tar.gz``-like archive at ``dest``.

    Endpoints and Kyma replicas take a model's code as an archive; for an algorithm-mode
    model that code is fedsage's handlers (``SERVING_PROGRAM`` and its package).
    """
    from .._archive import pack_dir

    package = SERVING_DIR / "fedsage_xgboost"
    files = [Path(SERVING_PROGRAM)] + [
        p.relative_to(SERVING_DIR)
        for p in sorted(package.rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    return pack_dir(SERVING_DIR, dest, only=files)


def image_name(framework_version: str) -> str:
    """The image a SageMaker job of this version runs (``sagemaker-xgboost:1.7-1``)."""
    return f"sagemaker-xgboost:{check_version(framework_version)}"


def metric_definitions() -> list[dict[str, str]]:
    """The algorithm's metric definitions, as SageMaker applies them to the job's log.

    ``validation:<m>`` with the image's regex, ``train:<m>`` with the one the service adds;
    both match tabs written as ``#011``, as CloudWatch shows them.
    """
    definitions = []
    for metric in (*MAXIMIZED_METRICS, *MINIMIZED_METRICS):
        definitions.append(
            {
                "Name": f"train:{metric}",
                "Regex": rf".*\[[0-9]+\].*#011train-{re.escape(metric)}:({_NUMBER.pattern}).*",
            }
        )
        definitions.append(
            {
                "Name": f"validation:{metric}",
                "Regex": rf".*\[[0-9]+\].*#011validation-{re.escape(metric)}:(\S+)",
            }
        )
    return definitions


def final_metrics(log_text: str) -> list[dict[str, Any]]:
    """``FinalMetricDataList``-like entries: the last value of every metric in the log.

    Parameters
    ----------
    log_text : str
        The job's log (tabs as written, or already as ``#011``).

    Returns
    -------
    list of dict
        ``{"MetricName": "validation:rmse", "Value": 0.35452}`` in definition order.
        The image's ``validation`` regex captures up to the next space, which with
        ``#011`` is the rest of the line; the leading number is taken.
    """
    lines = log_text.replace("\t", "#011").splitlines()
    found = []
    for definition in metric_definitions():
        pattern = re.compile(definition["Regex"])
        value = None
        for line in lines:
            match = pattern.match(line)
            if match:
                number = _NUMBER.match(match.group(1))
                if number:
                    value = float(number.group(0))
        if value is not None:
            found.append({"MetricName": definition["Name"], "Value": value})
    return found
