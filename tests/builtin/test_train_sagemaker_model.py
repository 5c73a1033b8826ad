"""DwcSagemaker.train_sagemaker_model in local mode: fedml-aws's built-in algorithm path
with SageMaker's XGBoost running on this machine, deployed and predicted, and the clear
errors for what does not run locally."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError, TrainingError


@pytest.fixture()
def dwc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DwcSagemaker:
    monkeypatch.chdir(tmp_path)
    return DwcSagemaker(prefix="builtin")


def _frame(rows: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3))
    label = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int)
    return pd.DataFrame(np.column_stack([label, features]))


def _worker_environments(dwc: DwcSagemaker, endpoint: str) -> list[dict[str, str]]:
    """The environment of each worker process of a local endpoint (``/proc/PID/environ``)."""
    folder = Path(dwc._backend.describe_endpoint(endpoint)["Local"]["dir"])
    state = json.loads((folder / "state.json").read_text())
    found = []
    for pid in state["workers"]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
        found.append(dict(item.split("=", 1) for item in raw.split("\0") if "=" in item))
    return found


HYPERPARAMETERS = {"num_round": 15, "objective": "binary:logistic", "eval_metric": "logloss"}


def test_xgboost_trains_deploys_and_predicts_locally(dwc: DwcSagemaker) -> None:
    frame = _frame()
    clf = dwc.train_sagemaker_model(
        frame.iloc[:120],
        "xgboost",
        "1.7-1",
        hyperparameters=HYPERPARAMETERS,
        channels={"validation": frame.iloc[120:]},
        logs="None",
    )
    described = clf.describe()
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["AlgorithmSpecification"]["TrainingImage"] == "sagemaker-xgboost:1.7-1"
    assert clf.job_name.startswith("xgboost-")
    # The image's plain-string hyperparameters, no script-mode entries.
    assert described["HyperParameters"] == {k: str(v) for k, v in HYPERPARAMETERS.items()}
    metrics = {m["MetricName"] for m in described["FinalMetricDataList"]}
    assert metrics == {"train:logloss", "validation:logloss"}
    endpoint = dwc.deploy(clf, 1, "local")
    try:
        rows = frame.iloc[:5, 1:]
        answer = dwc.predict(
            endpoint, rows.to_csv(header=False, index=False), content_type="text/csv"
        )
        scores = [float(v) for v in answer.split()]  # the image's default Accept: text/csv
        assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
        libsvm = "\n".join(
            " ".join(f"{i}:{v}" for i, v in enumerate(row)) for row in rows.to_numpy()
        )
        as_json = dwc.predict(
            endpoint, libsvm, content_type="text/libsvm", accept="application/json"
        )
        assert [p["score"] for p in json.loads(as_json)["predictions"]] == pytest.approx(scores)
        # No Content-Type means libsvm for this image, as on SageMaker.
        assert dwc._backend.invoke_endpoint(endpoint, libsvm.encode(), "", "")[0]
        # One OpenMP thread per worker, as the image's serving entry point sets it: the
        # workers' xgboost pools would otherwise fight over the cores.
        workers = _worker_environments(dwc, endpoint)
        assert workers and all(env.get("OMP_NUM_THREADS") == "1" for env in workers)
    finally:
        dwc.delete_endpoint(endpoint)


def test_latest_runs_on_the_newest_local_image_and_says_so(
    dwc: DwcSagemaker, caplog: pytest.LogCaptureFixture
) -> None:
    clf = dwc.train_sagemaker_model(
        _frame(), "xgboost", hyperparameters={"num_round": 3}, logs="None"
    )
    assert clf.describe()["AlgorithmSpecification"]["TrainingImage"] == "sagemaker-xgboost:3.0-5"
    assert "deprecated XGBoost 0.72 image" in caplog.text


def test_the_images_own_failure_reason_for_bad_hyperparameters(dwc: DwcSagemaker) -> None:
    with pytest.raises(TrainingError, match="Missing required hyperparameter: num_round") as failed:
        dwc.train_sagemaker_model(_frame(), "xgboost", "1.7-1", hyperparameters={}, logs="None")
    assert failed.value.reason.startswith("AlgorithmError: framework error")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"framework": "linear-learner"}, "only xgboost runs; aws mode"),
        ({"framework": "kmeans"}, "closed SageMaker image"),
        ({"framework": "xgboost", "framework_version": "0.90-1"}, "framework_version"),
        ({"framework": "xgboost", "instance_count": 2}, "trains on one instance"),
        ({"framework": "xgboost", "s3distributionTypeTrain": "Everywhere"}, "ShardedByS3Key"),
        ({"framework": "xgboost", "max_run": 0}, "max_run"),
    ],
)
def test_what_does_not_run_locally_is_a_clear_error(
    dwc: DwcSagemaker, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        dwc.train_sagemaker_model(_frame(), hyperparameters={"num_round": 2}, **kwargs)
    assert dwc._backend.list_training_jobs() == []


def test_an_unknown_keyword_is_a_type_error(dwc: DwcSagemaker) -> None:
    with pytest.raises(TypeError, match="maximum_runtime"):
        dwc.train_sagemaker_model(_frame(), "xgboost", "1.7-1", maximum_runtime=5)


def test_an_xgboost_model_behind_a_local_kyma_deployment(dwc: DwcSagemaker) -> None:
    clf = dwc.train_sagemaker_model(
        _frame(), "xgboost", "1.7-1", hyperparameters={"num_round": 5}, logs="None"
    )
    url = dwc.deploy_to_kyma(clf, None, initial_instance_count=1)
    try:
        answer = dwc.invoke_kyma_endpoint(url, "text/csv", payload="0.1,0.2,0.3")
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]  # fedml-aws's default Accept is JSON
        assert 0.0 <= prediction["score"] <= 1.0
    finally:
        from fedsage.kyma.manage import delete_deployment
        from fedsage.kyma.records import list_records

        for record in list_records():
            delete_deployment(record.name)
