"""The main job, end to end on the embedded default (what ``fedsage demo`` runs).

Sample data sets go into the embedded DuckDB warehouse; the iris view is read through
:class:`~fedsage.DbConnection` and streamed into the training channels; an unmodified
SageMaker training script trains on the ``0.23-1`` runtime; the model is deployed to a
local endpoint, asked for predictions, and the endpoint is deleted again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "run_demo"]

Progress = Callable[[str, str], None]

_FEATURES = ("SEPAL_LENGTH", "SEPAL_WIDTH", "PETAL_LENGTH", "PETAL_WIDTH")
_SPLIT = (
    'SELECT "SPECIES", "SEPAL_LENGTH", "SEPAL_WIDTH", "PETAL_LENGTH", "PETAL_WIDTH" FROM ('
    'SELECT *, row_number() OVER (ORDER BY "SEPAL_LENGTH", "SEPAL_WIDTH", "PETAL_LENGTH", '
    '"PETAL_WIDTH", "SPECIES") AS rn FROM "IRIS") WHERE rn % 5 {op} 0'
)


@dataclass
class DemoResult:
    """What the demo did, for display."""

    job_name: str = ""
    framework_version: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    endpoint_name: str = ""
    request: str = ""
    prediction: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def _metrics_from_log(lines: list[str]) -> dict[str, float]:
    for line in reversed(lines):
        if line.startswith("metrics: "):
            values: dict[str, float] = json.loads(line[len("metrics: ") :])
            return values
    return {}


def run_demo(
    *,
    framework_version: str | None = None,
    keep_endpoint: bool = False,
    progress: Progress | None = None,
) -> DemoResult:
    """Run the main job and return what it produced.

    Parameters
    ----------
    framework_version : str, optional
        The runtime to train and serve on (default ``0.23-1``, as fedml-aws).
    keep_endpoint : bool, default=False
        Leave the endpoint running (delete it later with ``fedsage endpoints delete``).
    progress : callable, optional
        Called as ``progress(step, detail)`` at each step; ``detail`` is ``"start"``,
        ``"done"`` or a progress message.

    Returns
    -------
    DemoResult

    Raises
    ------
    FedsageError
        When any step fails; the message says which and why.
    """
    from . import backends
    from .data import DbConnection
    from .data.samples import load_samples
    from .dwc_sagemaker import DwcSagemaker
    from .runtimes import DEFAULT_FRAMEWORK_VERSION, resolve_runtime

    report = progress or (lambda step, detail: None)
    result = DemoResult(framework_version=framework_version or DEFAULT_FRAMEWORK_VERSION)
    clock = time.perf_counter()

    def step_done(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings[step] = now - clock
        clock = now
        report(step, "done")

    report("data", "start")
    conn = DbConnection.embedded()
    try:
        load_samples(conn)
        train = conn.query(_SPLIT.format(op="<>"))
        test = conn.query(_SPLIT.format(op="="))
        sample_rows = conn.to_pandas(conn.query(_SPLIT.format(op="=") + " LIMIT 3"))
        step_done("data")

        report("runtime", "start")
        resolve_runtime(result.framework_version, progress=lambda msg, frac: report("runtime", msg))
        step_done("runtime")

        report("train", "start")
        dwc = DwcSagemaker(prefix="demo")
        script = resources.files("fedsage.demo_assets").joinpath("train_iris.py")
        with resources.as_file(script) as script_path:
            handle = dwc.train_sklearn_model(
                train_data=train,
                test_data=test,
                content_type="text/csv",
                train_script=str(Path(script_path)),
                base_job_name="fedsage-demo-iris",
                hyperparameters={"n-estimators": 50, "max-depth": 4},
                framework_version=result.framework_version,
            )
            result.job_name = handle.job_name
            report("train", f"job {handle.job_name}")
            handle.wait(logs="None")
        job_log = backends.get(dwc.mode, prefix=dwc.prefix).training_log(handle.job_name)
        result.metrics = _metrics_from_log(job_log)
        step_done("train")
    finally:
        conn.close()

    report("deploy", "start")
    result.endpoint_name = dwc.deploy(handle, initial_instance_count=1, instance_type="local")
    step_done("deploy")

    report("predict", "start")
    features = sample_rows[list(_FEATURES)]
    result.request = features.to_csv(header=False, index=False)
    answer = dwc.predict(
        result.endpoint_name, result.request, content_type="text/csv", accept="application/json"
    )
    result.prediction = answer if isinstance(answer, str) else answer.decode()
    step_done("predict")

    if not keep_endpoint:
        report("cleanup", "start")
        dwc.delete_endpoint(result.endpoint_name)
        step_done("cleanup")
    return result


def describe_result(result: DemoResult) -> dict[str, Any]:
    """A plain-dict view of a :class:`DemoResult` (for JSON output)."""
    return {
        "job_name": result.job_name,
        "framework_version": result.framework_version,
        "metrics": result.metrics,
        "endpoint_name": result.endpoint_name,
        "request": result.request,
        "prediction": result.prediction,
        "timings": result.timings,
    }
