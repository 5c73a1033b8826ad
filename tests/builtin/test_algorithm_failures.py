"""Refusals of algorithm mode: hyperparameters, channels and data, with the image's texts.

The expected messages are SageMaker XGBoost's own (reference/xgboost-builtin.md section 2,
read in aws/sagemaker-xgboost-container); the failure file and exit code are those the
SageMaker toolkit writes (``framework error: ...``, exit 1), with fedsage's one-line
reason right after ``framework error: ``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsage.builtin import xgboost as builtin_xgb
from fedsage.runtimes import Runtime

from .conftest import classification_data, csv_bytes, lay_out, regression_data, run_job, run_script

pytestmark = pytest.mark.slow

OBJECTIVES = (
    "['aft_loss_distribution', 'binary:logistic', 'binary:logitraw', 'binary:hinge', "
    "'count:poisson', 'multi:softmax', 'multi:softprob', 'rank:pairwise', 'rank:ndcg', "
    "'rank:map', 'reg:linear', 'reg:squarederror', 'reg:logistic', 'reg:gamma', "
    "'reg:pseudohubererror', 'reg:squaredlogerror', 'reg:absoluteerror', 'reg:tweedie', "
    "'survival:aft', 'survival:cox']"
)
METRICS = (
    "['accuracy', 'auc', 'aucpr', 'balanced_accuracy', 'f1', 'f1_binary', 'f1_macro', 'map', "
    "'ndcg', 'precision', 'r2', 'recall', 'precision_macro', 'precision_micro', "
    "'recall_macro', 'recall_micro', 'aft-nloglik', 'cox-nloglik', 'error', 'gamma-deviance', "
    "'gamma-nloglik', 'interval-regression-accuracy', 'logloss', 'mae', 'mape', 'merror', "
    "'mlogloss', 'mphe', 'mse', 'poisson-nloglik', 'rmse', 'rmsle', 'tweedie-nloglik']"
)
R = {"num_round": "10"}
CASES = [
    ({}, "Missing required hyperparameter: num_round"),
    ({"eta": "0.1"}, "Missing required hyperparameter: num_round"),
    (
        {"num_round": "ten"},
        "Hyperparameter num_round: could not parse value (caused by ValueError)",
    ),
    (
        {"num_round": "10.0"},
        "Hyperparameter num_round: could not parse value (caused by ValueError)",
    ),
    ({"num_round": "0"}, "Hyperparameter num_round: 0 is not in [1, +inf)"),
    ({**R, "eta": "2"}, "Hyperparameter eta: 2.0 is not in [0, 1]"),
    ({**R, "learning_rate": "2"}, "Hyperparameter eta: 2.0 is not in [0, 1]"),
    ({**R, "subsample": "0"}, "Hyperparameter subsample: 0.0 is not in (0, 1]"),
    ({**R, "reg_lambda": "-1"}, "Hyperparameter lambda: -1.0 is not in [0, +inf)"),
    ({**R, "verbosity": "4"}, "Hyperparameter verbosity: 4 is not in [0, 3]"),
    (
        {**R, "seed": "2147483647"},
        "Hyperparameter seed: 2147483647 is not in (-2147483648, 2147483647)",
    ),
    (
        {**R, "tweedie_variance_power": "2"},
        "Hyperparameter tweedie_variance_power: 2.0 is not in (1, 2)",
    ),
    ({**R, "prob_buffer_row": "1"}, "Hyperparameter prob_buffer_row: 1 is not in (1.0, +inf)"),
    ({**R, "objective": "foo"}, f"Hyperparameter objective: foo is not in {OBJECTIVES}"),
    (
        {**R, "booster": "linear"},
        "Hyperparameter booster: linear is not in ['gbtree', 'gblinear', 'dart']",
    ),
    (
        {**R, "tree_method": "magic"},
        "Hyperparameter tree_method: magic is not in ['auto', 'exact', 'approx', 'hist', 'gpu_hist']",
    ),
    (
        {**R, "objective": "reg:squarederror", "eval_metric": "rmse,bogus"},
        f"Hyperparameter eval_metric: value ['rmse', 'bogus'] not in range {METRICS}",
    ),
    (
        {**R, "_tuning_objective_metric": "validation:foo"},
        "Hyperparameter _tuning_objective_metric: validation:foo is not in ['validation:"
        + "', 'validation:".join(json.loads(METRICS.replace("'", '"')))
        + "']",
    ),
    ({**R, "silent": "1"}, "Extraneous hyperparameter found: silent"),
    ({**R, "device": "cpu"}, "Extraneous hyperparameter found: device"),
    (
        {**R, "objective": "multi:softmax"},
        "Require input for parameter 'num_class' for multi-classification",
    ),
    (
        {**R, "objective": "reg:squarederror", "eval_metric": "auc"},
        "Metric 'auc' can only be applied for classification and ranking problems.",
    ),
    (
        {**R, "objective": "binary:logistic", "eval_metric": "error@x"},
        "Threshold value 't' in 'error@t' expects float input.",
    ),
    (
        {**R, "objective": "binary:logistic", "eval_metric": "logloss@0.5"},
        "Metric 'logloss@0.5' is not supported. Parameter 'eval_metric' with customized "
        "threshold should be one of these options: 'error', 'ndcg', 'map'.",
    ),
    (
        {**R, "monotone_constraints": "(1,-1)"},
        "monotone_constraints can be used only when the tree_method parameter is set to "
        "either 'exact' or 'hist'.",
    ),
    (
        {**R, "tree_method": "hist", "monotone_constraints": "(1,2)"},
        "Hyperparameter monotone_constraints: value (1, 2) not in range [-1, 0, 1]",
    ),
    (
        {**R, "updater": "grow_colmaker,grow_histmaker"},
        "Only one tree grow plugin can be selected. Choose one from thefollowing: "
        "'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_skmaker'",
    ),
    (
        {**R, "process_type": "update", "updater": "grow_colmaker"},
        "process_type 'update' can only be used with updater 'refresh' and 'prune'",
    ),
]


def test_hyperparameter_messages_are_the_images(xgb305: Runtime, tmp_path: Path) -> None:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([hps for hps, _ in CASES]))
    results = run_script(
        xgb305, "validate_hyperparameters.py", str(builtin_xgb.SERVING_DIR), str(cases)
    )
    for (hps, expected), result in zip(CASES, results, strict=True):
        assert result.get("message") == expected, hps
        assert result["error"] == "UserError", hps


def test_valid_hyperparameters_parse_without_defaults(xgb171: Runtime, tmp_path: Path) -> None:
    cases = [
        {"num_round": "10", "learning_rate": "0.1", "max_depth": "3", "reg_lambda": "2"},
        {"num_round": "10", "num_class": "3"},  # accepted alone, as in the image
        {
            "num_round": "5",
            "objective": "binary:logistic",
            "eval_metric": "auc,error@0.3",
            "tree_method": "hist",
            "monotone_constraints": "(1,0,-1)",
            "interaction_constraints": "[[1, 2], [3]]",
        },
    ]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    results = run_script(
        xgb171, "validate_hyperparameters.py", str(builtin_xgb.SERVING_DIR), str(path)
    )
    assert results[0] == {"ok": {"num_round": 10, "eta": 0.1, "max_depth": 3, "lambda": 2.0}}
    assert results[1] == {"ok": {"num_round": 10, "num_class": 3}}
    ok = results[2]["ok"]
    assert ok["eval_metric"] == ["auc", "error@0.3"]
    assert ok["monotone_constraints"] == [1, 0, -1]
    assert ok["interaction_constraints"] == [[1, 2], [3]]
    # Dependencies first (the toolkit's order): objective before eval_metric, and so on.
    assert list(ok) == [
        "num_round",
        "objective",
        "eval_metric",
        "tree_method",
        "monotone_constraints",
        "interaction_constraints",
    ]


def test_failure_file_and_exit_code(xgb_runtime: Runtime, tmp_path: Path) -> None:
    job = lay_out(
        tmp_path / "opt_ml",
        {"eta": 0.1},
        {"train": ("text/csv", {"t.csv": csv_bytes(regression_data())})},
    )
    run_job(xgb_runtime, job)
    assert job.returncode == 1
    text = job.failure()
    assert text.startswith(
        "framework error: Missing required hyperparameter: num_round\n"
        "Traceback (most recent call last):\n"
    )
    assert text.endswith(
        "UserError: Missing required hyperparameter: num_round\n\n"
        "Missing required hyperparameter: num_round"
    )
    assert not (job.root / "output" / "success").exists()
    assert not any(Path(job.layout.model_dir).iterdir())
    assert "Reporting training FAILURE" in job.stderr


def _failure_message(runtime: Runtime, tmp: Path, hps: dict, channels: dict, **kw) -> str:
    job = run_job(runtime, lay_out(tmp, hps, channels, **kw))
    assert job.returncode == 1, job.log
    text = job.failure()
    assert text.startswith("framework error: ")
    # The message is the last part, after the traceback and an empty line.
    return text.rsplit("\n\n", 1)[-1]


OK = {"num_round": 3, "objective": "reg:squarederror"}


def test_bad_channels(xgb305: Runtime, tmp_path: Path) -> None:
    csv_file = {"t.csv": csv_bytes(regression_data())}
    message = _failure_message(
        xgb305, tmp_path / "a", OK, {"train": ("csv", csv_file), "test": ("csv", csv_file)}
    )
    assert message == "Extraneous channel found: test"

    message = _failure_message(xgb305, tmp_path / "b", OK, {"training": ("csv", csv_file)})
    assert message.startswith("Missing required channel: train ")
    assert "channels given: training" in message

    message = _failure_message(
        xgb305, tmp_path / "c", OK, {"train": ("application/json", csv_file)}
    )
    assert message == (
        "Channel configuration for 'train' channel is not supported: {'ContentType': "
        "'application/json', 'TrainingInputMode': 'File', 'S3DistributionType': "
        "'FullyReplicated', 'RecordWrapperType': 'None'}"
    )
    # A channel without ContentType is libsvm; FastFile is not a supported mode.
    config = {"train": {"TrainingInputMode": "FastFile", "S3DistributionType": "FullyReplicated"}}
    message = _failure_message(
        xgb305, tmp_path / "d", OK, {"train": (None, csv_file)}, data_config=config
    )
    assert message == (
        "Channel configuration for 'train' channel is not supported: {'TrainingInputMode': "
        "'FastFile', 'S3DistributionType': 'FullyReplicated', 'ContentType': 'text/libsvm'}"
    )


def test_bad_data(xgb305: Runtime, tmp_path: Path) -> None:
    data = regression_data()
    message = _failure_message(
        xgb305,
        tmp_path / "hidden",
        OK,
        {"train": ("csv", {"t.csv": csv_bytes(data), "sub/.DS_Store": b"x"})},
    )
    assert message == "Hidden file found in the data path! Remove that before training."

    job = run_job(xgb305, lay_out(tmp_path / "empty", OK, {"train": ("csv", {})}))
    assert job.returncode == 1
    assert job.failure().endswith(
        f"\n\nNo data in training channel path {job.layout.channel_dir('train')}"
    )

    message = _failure_message(
        xgb305, tmp_path / "libsvm", OK, {"train": ("libsvm", {"x.libsvm": b"a,b,c\n1,2,3\n"})}
    )
    assert message == (
        "First line 'a,b,c\n...' of file 'x.libsvm' is not 'LIBSVM' format. Please ensure "
        "the file is in 'LIBSVM' format."
    )

    message = _failure_message(
        xgb305, tmp_path / "nodelim", OK, {"train": ("csv", {"y.csv": b"\n1,2\n"})}
    )
    assert message == "Could not determine delimiter on line \n:\nCould not determine delimiter"

    # One column: csv.Sniffer picks a digit as the delimiter, as it does in the image, and
    # xgboost refuses the file.
    job = run_job(
        xgb305, lay_out(tmp_path / "onecol", OK, {"train": ("csv", {"y.csv": b"5\n6\n"})})
    )
    assert job.returncode == 1
    assert job.failure().startswith("framework error: Failed to load csv data with exception: ")
    assert "Delimiter '5' is not found in the line" in job.failure()

    labels = classification_data()
    labels[0, 0] = 2.0
    _failure_message(
        xgb305,
        tmp_path / "label",
        {"num_round": 3, "objective": "binary:logistic"},
        {"train": ("csv", {"t.csv": csv_bytes(labels)})},
    )
    # A known xgboost data error is the user's (UserError with xgboost's text).
    text = (tmp_path / "label" / "output" / "failure").read_text()
    assert "label must be in [0,1] for logistic regression" in text.splitlines()[0]
    assert "UserError" in text and "XGB train call failed" not in text


def test_csv_header_row_is_read_as_data_with_a_warning(xgb171: Runtime, tmp_path: Path) -> None:
    data = regression_data(rows=60)
    content = b"label,a,b,c,d\n" + csv_bytes(data)
    job = run_job(
        xgb171,
        lay_out(tmp_path / "opt_ml", {"num_round": 2}, {"train": ("csv", {"h.csv": content})}),
    )
    assert job.returncode == 0, job.log
    assert "looks like a header ('label', 'a', 'b', 'c', 'd')" in job.stderr
    assert "this line becomes a training row with label 0" in job.stderr
    # As in the image, the header is a data row: 61 rows for 60 records.
    assert "Train matrix has 61 rows and 4 columns" in job.stderr
