"""Algorithm-mode training in the real XGBoost runtimes, on laid-out /opt/ml trees.

Every job runs the trainer as a subprocess under the runtime's interpreter; its model is
compared with xgboost's own ``train`` + ``predict`` on the same data and parameters, run
in the same runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedsage.runtimes import Runtime

from .conftest import (
    Job,
    classification_data,
    csv_bytes,
    lay_out,
    libsvm_bytes,
    parquet_bytes,
    recordio_bytes,
    reference,
    regression_data,
    run_job,
)

pytestmark = pytest.mark.slow


def _model_format(path: Path) -> str:
    head = path.read_bytes()[:4]
    if head == b"binf":
        return "legacy-binary"
    if head[:1] == b"{":
        return "ubjson"
    return repr(head)


EXPECTED_FORMAT = {"1.7-1": "legacy-binary", "3.0-5": "ubjson"}


def _check_against_reference(
    runtime: Runtime, tmp: Path, job: Job, params: dict, num_round: int, train, validation
) -> dict:
    ref = reference(
        runtime,
        tmp,
        params=params,
        num_round=num_round,
        train=train,
        validation=validation,
        predict=validation[:, 1:],
        model=str(job.model_file()),
    )
    # The job's model predicts exactly what xgboost's own train + predict gives.
    assert ref["model_predictions"] == ref["predictions"]
    assert ref["model_rounds"] == ref["rounds"] == num_round
    return ref


def test_regression_from_csv(xgb_runtime: Runtime, tmp_path: Path) -> None:
    data = regression_data()
    train, validation = data[:180], data[180:]
    hps = {"num_round": 12, "objective": "reg:squarederror", "max_depth": 3, "eta": 0.3}
    job = lay_out(
        tmp_path / "opt_ml",
        hps,
        {
            "train": ("text/csv", {"train.csv": csv_bytes(train)}),
            "validation": ("text/csv", {"validation.csv": csv_bytes(validation)}),
        },
    )
    run_job(xgb_runtime, job)
    assert job.returncode == 0, job.log
    assert (job.root / "output" / "success").exists()
    assert not (job.root / "output" / "failure").exists()
    assert _model_format(job.model_file()) == EXPECTED_FORMAT[xgb_runtime.framework_version]

    rounds = job.metric_lines()
    assert len(rounds) == 12
    # No eval_metric: xgboost's default for the objective, train first.
    assert list(rounds[0]) == ["train-rmse", "validation-rmse"]
    params = {"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3}
    ref = _check_against_reference(xgb_runtime, tmp_path, job, params, 12, train, validation)
    for index, metrics in enumerate(rounds):
        assert metrics["train-rmse"] == round(ref["evals_result"]["train"]["rmse"][index], 5)
        assert metrics["validation-rmse"] == round(
            ref["evals_result"]["validation"]["rmse"][index], 5
        )
    assert rounds[-1]["validation-rmse"] < rounds[0]["validation-rmse"]


def test_binary_classification_from_libsvm_with_early_stopping(
    xgb_runtime: Runtime, tmp_path: Path
) -> None:
    data = classification_data()
    train, validation = data[:220], data[220:]
    hps = {
        "num_round": 200,
        "objective": "binary:logistic",
        "eval_metric": "error,logloss",
        "early_stopping_rounds": 5,
        "eta": 0.5,
        "max_depth": 6,
    }
    job = lay_out(
        tmp_path / "opt_ml",
        hps,
        {
            "train": (None, {"part-0.libsvm": libsvm_bytes(train)}),  # libsvm by default
            "validation": ("text/libsvm", {"part-0.libsvm": libsvm_bytes(validation)}),
        },
    )
    run_job(xgb_runtime, job)
    assert job.returncode == 0, job.log
    rounds = job.metric_lines()
    assert list(rounds[0]) == [
        "train-error",
        "train-logloss",
        "validation-error",
        "validation-logloss",
    ]
    # Stopped early on validation-logloss (the last eval_metric), minimised.
    assert len(rounds) < 200
    losses = [r["validation-logloss"] for r in rounds]
    # Identical files in both channels would be warned about: these differ in size.
    assert "Suspected identical files" not in job.log

    # libsvm indices are used as written (0-based here), so the reference matches.
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["error", "logloss"],
        "eta": 0.5,
        "max_depth": 6,
    }
    ref = reference(
        xgb_runtime,
        tmp_path,
        params=params,
        num_round=200,
        train=train,
        validation=validation,
        predict=validation[:, 1:],
        early_stopping={"rounds": 5, "metric": "logloss", "maximize": False},
        model=str(job.model_file()),
    )
    assert ref["model_predictions"] == ref["predictions"]
    # Same stopping round as xgboost's own EarlyStopping, and the best model was kept.  The
    # last round's line may be missing: xgboost keeps its callbacks in a set, and when
    # EarlyStopping runs first the monitor is not called for that round (so in the image).
    assert len(ref["evals_result"]["validation"]["logloss"]) in (len(rounds), len(rounds) + 1)
    assert ref["model_rounds"] == ref["rounds"] < len(rounds)
    reference_losses = ref["evals_result"]["validation"]["logloss"][: len(losses)]
    assert [round(v, 5) for v in reference_losses] == losses


@pytest.mark.parametrize("fmt", ["parquet", "recordio-dense", "recordio-sparse"])
def test_regression_from_parquet_and_recordio(fmt: str, xgb305: Runtime, tmp_path: Path) -> None:
    data = regression_data(seed=3)
    train, validation = data[:180], data[180:]
    if fmt == "parquet":
        content_type = "application/x-parquet"
        files = ({"a.parquet": parquet_bytes(train)}, {"b.parquet": parquet_bytes(validation)})
    else:
        content_type = "application/x-recordio-protobuf"
        sparse = fmt.endswith("sparse")
        files = (
            {"train.rec": recordio_bytes(train, sparse=sparse)},
            {"val.rec": recordio_bytes(validation, sparse=sparse)},
        )
    hps = {"num_round": 8, "objective": "reg:squarederror", "eval_metric": "rmse,mae"}
    job = lay_out(
        tmp_path / "opt_ml",
        hps,
        {"train": (content_type, files[0]), "validation": (content_type, files[1])},
    )
    run_job(xgb305, job)
    assert job.returncode == 0, job.log
    rounds = job.metric_lines()
    assert len(rounds) == 8
    # rmse and mae are computed by the container (scikit-learn), after xgboost's metrics.
    assert set(rounds[0]) == {"train-rmse", "train-mae", "validation-rmse", "validation-mae"}
    if fmt == "recordio-sparse":
        # A sparse tensor leaves zeros out, and xgboost reads what is absent as missing.
        train, validation = _zeros_missing(train), _zeros_missing(validation)
    _check_against_reference(
        xgb305, tmp_path, job, {"objective": "reg:squarederror"}, 8, train, validation
    )


def _zeros_missing(data: np.ndarray) -> np.ndarray:
    out = data.copy()
    features = out[:, 1:]
    features[features == 0] = np.nan
    return out


def test_recordio_on_the_legacy_runtime_and_csv_weights(xgb171: Runtime, tmp_path: Path) -> None:
    data = regression_data(seed=4)
    job = lay_out(
        tmp_path / "rec",
        {"num_round": 5, "objective": "reg:squarederror"},
        {"train": ("recordio-protobuf", {"d/train.rec": recordio_bytes(data, dtype=np.float64)})},
    )
    run_job(xgb171, job)
    assert job.returncode == 0, job.log
    assert list(job.metric_lines()[0]) == ["train-rmse"]
    ref = reference(
        xgb171,
        tmp_path,
        params={"objective": "reg:squarederror"},
        num_round=5,
        train=data,
        predict=data[:, 1:],
        model=str(job.model_file()),
    )
    assert ref["model_predictions"] == ref["predictions"]

    # csv_weights=1: column 1 is the instance weight, the features start at column 2.
    weights = np.where(data[:, 1] > 0, 4.0, 1.0)
    weighted = np.column_stack([data[:, 0], weights, data[:, 1:]])
    job = lay_out(
        tmp_path / "weights",
        {"num_round": 5, "objective": "reg:squarederror", "csv_weights": 1},
        {"train": ("csv", {"w.csv": csv_bytes(weighted)})},
    )
    run_job(xgb171, job)
    assert job.returncode == 0, job.log
    unweighted = reference(
        xgb171,
        tmp_path,
        params={"objective": "reg:squarederror"},
        num_round=5,
        train=data,
        predict=data[:, 1:],
        model=str(job.model_file()),
    )
    # The weighted model differs from the unweighted one: the weights were used.
    assert unweighted["model_predictions"] != unweighted["predictions"]


def test_container_metrics_and_tuning_metric(xgb171: Runtime, tmp_path: Path) -> None:
    data = classification_data(seed=5, noise=0.0)
    job = lay_out(
        tmp_path / "opt_ml",
        {
            "num_round": 4,
            "objective": "binary:logistic",
            "eval_metric": "auc,accuracy,f1",
            "_tuning_objective_metric": "validation:accuracy",
        },
        {
            "train": ("text/csv", {"t.csv": csv_bytes(data[:200])}),
            "validation": ("text/csv", {"v.csv": csv_bytes(data[200:])}),
        },
    )
    run_job(xgb171, job)
    assert job.returncode == 0, job.log
    first = job.metric_lines()[0]
    # xgboost's auc first, then the container's metrics (sorted with the tuning metric).
    assert list(first) == [
        "train-auc",
        "train-accuracy",
        "train-f1",
        "validation-auc",
        "validation-accuracy",
        "validation-f1",
    ]
    assert 0.5 < first["validation-accuracy"] <= 1.0


def test_kfold_writes_one_model_per_fold_and_predictions(xgb305: Runtime, tmp_path: Path) -> None:
    data = regression_data(seed=6, rows=120)
    job = lay_out(
        tmp_path / "opt_ml",
        {"num_round": 3, "objective": "reg:squarederror", "_kfold": 3},
        {
            "train": ("csv", {"t.csv": csv_bytes(data[:90])}),
            "validation": ("csv", {"v.csv": csv_bytes(data[90:])}),
        },
    )
    run_job(xgb305, job)
    assert job.returncode == 0, job.log
    models = sorted(p.name for p in Path(job.layout.model_dir).iterdir())
    assert models == ["xgboost-model-0", "xgboost-model-1", "xgboost-model-2"]
    predictions = np.loadtxt(Path(job.layout.output_data_dir) / "predictions.csv", delimiter=",")
    assert predictions.shape == (120, 2)
    assert sorted(predictions[:, 0].tolist()) == sorted(data[:, 0].tolist())
    assert "[3]\ttrain-rmse:" in job.stdout  # the cross-validation summary line


def test_checkpoints_resume(xgb305: Runtime, tmp_path: Path) -> None:
    data = regression_data(seed=7)
    checkpoints = tmp_path / "checkpoints"

    def job_with(num_round: int, root: Path) -> Job:
        job = lay_out(
            root,
            {"num_round": num_round, "objective": "reg:squarederror"},
            {"train": ("csv", {"t.csv": csv_bytes(data)})},
        )
        config = Path(job.layout.config_dir) / "checkpointconfig.json"
        config.write_text(json.dumps({"LocalPath": str(checkpoints)}))
        return run_job(xgb305, job)

    first = job_with(4, tmp_path / "a")
    assert first.returncode == 0, first.log
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        f"xgboost-checkpoint.{i}" for i in range(4)
    ]
    second = job_with(6, tmp_path / "b")
    assert second.returncode == 0, second.log
    assert "Resuming from iteration 4" in second.log
    # Two more rounds only (xgboost numbers a continued run's rounds from 0 again).
    assert len(second.metric_lines()) == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        f"xgboost-checkpoint.{i}" for i in range(1, 6)
    ]
    ref = reference(
        xgb305,
        tmp_path,
        params={"objective": "reg:squarederror"},
        num_round=6,
        train=data,
        predict=data[:, 1:],
        model=str(second.model_file()),
    )
    assert ref["model_predictions"] == ref["predictions"]
