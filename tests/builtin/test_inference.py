"""The algorithm's inference handlers: called directly in the runtime, and served by
fedsage's real model worker on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from fedsage.builtin import xgboost as builtin_xgb
from fedsage.runtimes import Runtime

from .conftest import (
    call_handlers,
    classification_data,
    csv_bytes,
    lay_out,
    libsvm_bytes,
    recordio_bytes,
    reference,
    regression_data,
    run_job,
    serving,
)

pytestmark = pytest.mark.slow


def _train(runtime: Runtime, tmp: Path, hps: dict, data: np.ndarray) -> Path:
    job = run_job(
        runtime, lay_out(tmp / "job", hps, {"train": ("csv", {"t.csv": csv_bytes(data)})})
    )
    assert job.returncode == 0, job.log
    return Path(job.layout.model_dir)


def _expected(runtime: Runtime, tmp: Path, model_dir: Path, features: np.ndarray) -> list[float]:
    ref = reference(
        runtime,
        tmp,
        params={},
        num_round=1,
        train=np.column_stack([np.zeros(2), features[:2]]),
        predict=features,
        model=str(model_dir / builtin_xgb.MODEL_FILE),
    )
    return ref["model_predictions"]


def _csv_values(body: bytes) -> list[float]:
    return [float(line) for line in body.decode().splitlines()]


def test_regression_handlers(xgb_runtime: Runtime, tmp_path: Path) -> None:
    data = regression_data()
    model_dir = _train(
        xgb_runtime, tmp_path, {"num_round": 6, "objective": "reg:squarederror"}, data
    )
    rows = data[:5]
    expected = _expected(xgb_runtime, tmp_path, model_dir, rows[:, 1:])
    csv_body = csv_bytes(rows[:, 1:])
    requests = [
        {"body": csv_body, "content_type": "text/csv", "accept": None},
        {"body": csv_body, "content_type": "text/csv; charset=utf-8", "accept": "application/json"},
        {"body": libsvm_bytes(rows), "content_type": None, "accept": "*/*"},
        {"body": recordio_bytes(rows), "content_type": "application/x-recordio-protobuf"},
        {"body": b"", "content_type": "text/csv"},
        {"body": b"[[1, 2, 3, 4]]", "content_type": "application/json"},
        {"body": b"a,b,c,d", "content_type": "text/csv"},
        {"body": b"1,2,3,4,5,6,7", "content_type": "text/csv"},
        {"body": csv_body, "content_type": "text/csv", "accept": "text/plain"},
        {"body": csv_body, "content_type": "text/csv", "accept": "application/jsonlines"},
        {"body": csv_body, "content_type": "text/csv", "env": {"SAGEMAKER_BATCH": "true"}},
        {
            "body": csv_body,
            "content_type": "text/csv",
            "accept": "application/json",
            "env": {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score,predicted_label"},
        },
    ]
    result = call_handlers(xgb_runtime, tmp_path, model_dir, requests)
    assert result["objective"] == "reg:squarederror"
    assert result["execution_parameters"]["BatchStrategy"] == "MULTI_RECORD"
    assert result["execution_parameters"]["MaxPayloadInMB"] == 6
    r = result["replies"]

    # CSV in, CSV out (the default Accept): one prediction per line, exactly the model's.
    assert (r[0]["status"], r[0]["content_type"]) == (200, "text/csv; charset=utf-8")
    assert r[0]["body"].endswith(b"\n")
    assert _csv_values(r[0]["body"]) == pytest.approx(expected, rel=1e-7)
    assert json.loads(r[1]["body"]) == {
        "predictions": [{"score": v} for v in _csv_values(r[0]["body"])]
    }
    assert r[1]["content_type"] == "application/json"
    # libsvm is the default content type; labels are ignored.
    assert _csv_values(r[2]["body"]) == _csv_values(r[0]["body"])
    assert _csv_values(r[3]["body"]) == _csv_values(r[0]["body"])
    assert (r[4]["status"], r[4]["body"]) == (204, b"")
    assert r[5]["status"] == 415
    assert r[5]["body"].decode() == (
        "application/json is not an accepted ContentType: csv, libsvm, parquet, "
        "recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
        "application/x-recordio-protobuf."
    )
    assert r[6]["status"] == 415
    assert (
        r[6]["body"]
        .decode()
        .startswith(
            "Loading csv data failed with Exception, please ensure data is in csv format:\n <class "
        )
    )
    assert r[7]["status"] == 400  # more columns than the model has
    assert r[7]["body"].decode().startswith("Unable to evaluate payload provided: ")
    assert r[8]["status"] == 406
    assert r[8]["body"].decode() == (
        "Accept type text/plain is not supported. Please use supported accept types: "
        "['application/json', 'application/jsonlines', 'application/x-recordio-protobuf', "
        "'text/csv']."
    )
    assert r[9]["status"] == 406 and b"SAGEMAKER_INFERENCE_OUTPUT" in r[9]["body"]
    assert r[10]["body"].decode() == "".join(f"{v}\n" for v in _csv_values(r[0]["body"]))
    selected = json.loads(r[11]["body"].decode().replace("NaN", "null"))
    assert selected["predictions"][0] == {
        "predicted_score": _csv_values(r[0]["body"])[0],
        "predicted_label": None,  # NaN: not a key of a regression objective
    }


def test_binary_selectable_output(xgb305: Runtime, tmp_path: Path) -> None:
    from sagemaker.amazon.common import read_records

    data = classification_data(noise=0.0)
    model_dir = _train(xgb305, tmp_path, {"num_round": 5, "objective": "binary:logistic"}, data)
    rows = data[:4, 1:]
    keys = "predicted_label,probability,probabilities,labels"
    env = {"SAGEMAKER_INFERENCE_OUTPUT": keys}
    requests = [
        {"body": csv_bytes(rows), "content_type": "text/csv", "accept": accept, "env": env}
        for accept in (
            "text/csv",
            "application/json",
            "application/jsonlines",
            "application/x-recordio-protobuf",
        )
    ]
    requests.append({"body": csv_bytes(rows), "content_type": "text/csv"})
    r = call_handlers(xgb305, tmp_path, model_dir, requests)["replies"]
    probabilities = _csv_values(r[4]["body"])
    lines = r[0]["body"].decode().split("\n")
    assert len(lines) == 4  # no trailing newline outside batch transform
    for line, p in zip(lines, probabilities, strict=True):
        assert line == f'{int(p > 0.5)},{p},"{[1.0 - p, p]}","[0, 1]"'
    as_json = json.loads(r[1]["body"])["predictions"]
    assert as_json[0] == {
        "predicted_label": int(probabilities[0] > 0.5),
        "probability": probabilities[0],
        "probabilities": [1.0 - probabilities[0], probabilities[0]],
        "labels": [0, 1],
    }
    assert [json.loads(line) for line in r[2]["body"].decode().splitlines()] == as_json
    assert r[3]["content_type"] == "application/x-recordio-protobuf"
    records = read_records(io.BytesIO(r[3]["body"]))  # the SDK's own reader
    assert len(records) == 4
    first = records[0].label
    assert list(first["probabilities"].float32_tensor.values) == pytest.approx(
        [1.0 - probabilities[0], probabilities[0]], rel=1e-6
    )
    assert list(first["labels"].float32_tensor.values) == [0.0, 1.0]
    assert first["predicted_label"].float32_tensor.values[0] == int(probabilities[0] > 0.5)


def test_every_model_file_is_loaded(xgb171: Runtime, tmp_path: Path) -> None:
    data = regression_data()
    model_dir = _train(xgb171, tmp_path, {"num_round": 4, "objective": "reg:squarederror"}, data)
    shutil.copy(model_dir / "xgboost-model", model_dir / "second-model")
    (model_dir / ".hidden").write_text("ignored")
    body = {"body": csv_bytes(data[:3, 1:]), "content_type": "text/csv"}
    single = call_handlers(xgb171, tmp_path, model_dir, [body])["replies"][0]["body"]
    # Two identical models: the ensemble's mean is the same prediction.
    assert single.count(b"\n") == 3
    (model_dir / "notes.txt").write_text("not a model")
    broken = call_handlers(xgb171, tmp_path, model_dir, [body])
    assert broken["model_error"].startswith(
        f"RuntimeError: Model {model_dir / 'notes.txt'} cannot be loaded:\nPickle load error="
    )
    assert "remove notes.txt" in broken["model_error"]


def test_served_by_the_model_worker(xgb171: Runtime, tmp_path: Path) -> None:
    data = regression_data()
    model_dir = _train(xgb171, tmp_path, {"num_round": 6, "objective": "reg:squarederror"}, data)
    rows = data[:3]
    expected = _expected(xgb171, tmp_path, model_dir, rows[:, 1:])
    with serving(tmp_path / "server", model_dir, xgb171) as url:
        assert httpx.get(f"{url}/ping").status_code == 200
        reply = httpx.post(
            f"{url}/invocations",
            content=csv_bytes(rows[:, 1:]),
            headers={"Content-Type": "text/csv"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "text/csv; charset=utf-8"
        assert _csv_values(reply.content) == pytest.approx(expected, rel=1e-7)
        reply = httpx.post(
            f"{url}/invocations",
            content=libsvm_bytes(rows),
            headers={"Content-Type": "text/libsvm", "Accept": "application/json"},
        )
        assert reply.json() == {
            "predictions": [{"score": v} for v in _csv_values(reply_csv(url, rows))]
        }
        reply = httpx.post(
            f"{url}/invocations",
            content=b"[[1,2,3,4]]",
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code == 415
        assert reply.text.startswith("application/json is not an accepted ContentType")
        reply = httpx.post(f"{url}/invocations", content=b"", headers={"Content-Type": "text/csv"})
        assert reply.status_code == 204 and reply.content == b""
        params = httpx.get(f"{url}/execution-parameters").json()
        assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6


def reply_csv(url: str, rows: np.ndarray) -> bytes:
    return httpx.post(
        f"{url}/invocations", content=csv_bytes(rows[:, 1:]), headers={"Content-Type": "text/csv"}
    ).content


def test_workers_with_several_openmp_threads_answer(xgb305: Runtime, tmp_path: Path) -> None:
    """A user's OMP_NUM_THREADS=2: the zygote loads the model and forks the workers.

    xgboost 3 starts OpenMP threads while loading a model; a worker forked after that
    waited forever for threads it does not have (its first request hung).
    """
    data = regression_data()
    model_dir = _train(xgb305, tmp_path, {"num_round": 6, "objective": "reg:squarederror"}, data)
    rows = data[:300]
    expected = _expected(xgb305, tmp_path, model_dir, rows[:, 1:])
    env = {"OMP_NUM_THREADS": "2"}
    with serving(tmp_path / "server", model_dir, xgb305, env) as url:
        reply = httpx.post(
            f"{url}/invocations",
            content=csv_bytes(rows[:, 1:]),
            headers={"Content-Type": "text/csv"},
            timeout=60,  # a hung worker is killed by the server's watchdog after 70 s
        )
        assert reply.status_code == 200, reply.text
        assert _csv_values(reply.content) == pytest.approx(expected, rel=1e-6)
