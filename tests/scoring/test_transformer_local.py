"""handle.transformer(...).transform(...) in local mode: a real model on the 0.23-1 runtime.

One training job (a normal SageMaker scikit-learn script: LinearRegression, y = 1 + 2a + 3b)
serves every test; each transform job starts the model's own server, as the service does.
"""

from __future__ import annotations

import gzip
import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError, TransformJobError
from fedsage.scoring.transform_jobs import transform_jobs

SCRIPT = textwrap.dedent(
    """
    import json
    import os

    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    if os.environ.get("TEST_EXECUTION_PARAMETERS"):
        def execution_parameters_fn():
            return {"MaxConcurrentTransforms": 2, "BatchStrategy": "SINGLE_RECORD",
                    "MaxPayloadInMB": 1}


    if os.environ.get("TEST_ECHO_ENV"):
        from sagemaker_containers.beta.framework import worker

        def output_fn(prediction, accept):
            names = ["SAGEMAKER_BATCH", "SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_BATCH_STRATEGY",
                     "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "TEST_ECHO_ENV"]
            seen = {name: os.environ.get(name) for name in names}
            seen["rows"] = int(np.atleast_1d(prediction).shape[0])
            return worker.Response(response=json.dumps(seen), status=200,
                                   mimetype="application/json")


    if os.environ.get("TEST_DIE_ONCE"):
        def predict_fn(data, model):
            marker = os.environ["TEST_DIE_ONCE"]
            if not os.path.exists(marker):  # the first request kills its worker
                open(marker, "w").close()
                os._exit(1)
            return model.predict(data)


    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LinearRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)

BUCKET = "fedsage-local"


def _expected(a: float, b: float) -> float:
    return 1.0 + 2.0 * a + 3.0 * b


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    home = tmp_path_factory.mktemp("transform-home")
    work = tmp_path_factory.mktemp("transform-work")
    (work / "train.py").write_text(SCRIPT)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 10, 30).astype(float), rng.integers(0, 10, 30).astype(float)
    frame = pd.DataFrame({"y": 1 + 2 * a + 3 * b, "a": a, "b": b})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDSAGE_HOME", str(home))
        cache = os.environ.get("FEDSAGE_TEST_RUNTIME_CACHE")
        if cache:
            patch.setenv("FEDSAGE_RUNTIMES_DIR", cache)
        patch.chdir(work)
        handle = DwcSagemaker(prefix="bt").train_sklearn_model(
            frame, train_script="train.py", wait=True, logs="None"
        )
    return home, work, handle.job_name


@pytest.fixture()
def dwc(trained: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch) -> DwcSagemaker:
    home, work, _ = trained
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    monkeypatch.chdir(work)
    return DwcSagemaker(prefix="bt")


@pytest.fixture()
def handle(dwc: DwcSagemaker, trained: tuple[Path, Path, str]):  # type: ignore[no-untyped-def]
    return _handle(dwc, trained[2])


def _handle(dwc: DwcSagemaker, job_name: str):  # type: ignore[no-untyped-def]
    from fedsage.estimator import TrainingJobHandle

    return TrainingJobHandle.from_description(
        dwc._backend, dwc._backend.describe_training_job(job_name)
    )


def _put(dwc: DwcSagemaker, key: str, data: bytes, tmp: Path) -> str:
    path = tmp / "upload"
    path.write_bytes(data)
    return dwc._backend.store.put_file(key, path)


def _read(uri: str) -> bytes:
    from fedsage.storage.local import fetch_uri

    target = Path(os.environ["FEDSAGE_HOME"]) / "read.tmp"
    return fetch_uri(uri, target).read_bytes()


def _exists(uri: str) -> bool:
    from fedsage.storage.local import uri_exists

    return uri_exists(uri)


def _csv(rows: list[tuple[float, float]]) -> bytes:
    return "".join(f"{a},{b}\n" for a, b in rows).encode()


def _predictions(data: bytes) -> list[float]:
    return [float(line) for line in data.decode().splitlines() if line.strip()]


ROWS = [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0), (0.0, 0.0), (2.0, 7.0)]


def test_csv_line_multirecord_writes_one_out_per_file(dwc, handle, tmp_path) -> None:
    _put(dwc, "bt/in1/a.csv", _csv(ROWS), tmp_path)
    _put(dwc, "bt/in1/sub/b.csv", _csv(ROWS[:2]), tmp_path)
    _put(dwc, "bt/in1-other/c.csv", _csv(ROWS), tmp_path)  # not under the prefix "bt/in1/"
    transformer = handle.transformer(
        1, "local", strategy="MultiRecord", assemble_with="Line", accept="text/csv"
    )
    transformer.transform(
        f"s3://{BUCKET}/bt/in1/", content_type="text/csv", split_type="Line", logs=False
    )
    name = transformer.latest_transform_job.name
    assert transformer.output_path == f"s3://{BUCKET}/bt/{name}"
    out = _predictions(_read(f"{transformer.output_path}/a.csv.out"))
    assert out == pytest.approx([_expected(a, b) for a, b in ROWS], rel=1e-5)
    nested = _predictions(_read(f"{transformer.output_path}/sub/b.csv.out"))
    assert nested == pytest.approx([_expected(a, b) for a, b in ROWS[:2]], rel=1e-5)
    assert not _exists(f"{transformer.output_path}/c.csv.out")
    described = transformer.latest_transform_job.describe()
    assert described["TransformJobStatus"] == "Completed"
    files = {f["Input"]: f for f in described["Fedsage"]["Files"]}
    assert files[f"s3://{BUCKET}/bt/in1/a.csv"]["Requests"] == 1  # all five in one request
    assert files[f"s3://{BUCKET}/bt/in1/a.csv"]["Records"] == 5


def test_describe_has_the_service_shape(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/shape/a.csv", _csv(ROWS), tmp_path)
    transformer = handle.transformer(
        2, "ml.m5.large", strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        max_concurrent_transforms=2, max_payload=3, env={"EXTRA": "1"}, model_server_workers=1,
        tags=[{"Key": "team", "Value": "ds"}],
    )  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line",
                          job_name="shape-job-1", logs=False)  # fmt: skip
    described = transformer.latest_transform_job.describe()
    required = {"TransformJobName", "TransformJobArn", "TransformJobStatus", "ModelName",
                "TransformInput", "TransformResources", "CreationTime"}  # fmt: skip
    assert required <= set(described)
    assert described["TransformJobName"] == "shape-job-1"
    assert described["TransformJobArn"].startswith("arn:aws:sagemaker:us-east-1:")
    assert described["TransformJobArn"].endswith(":transform-job/shape-job-1")
    # The SDK's estimator names the model from its base job name and a new timestamp.
    assert described["ModelName"].startswith(f"{handle.base_job_name}-")
    assert described["ModelName"] != handle.job_name
    assert described["MaxConcurrentTransforms"] == 2
    assert described["MaxPayloadInMB"] == 3
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 3,
    }  # fmt: skip
    assert described["Environment"] == {"EXTRA": "1"}  # the job's env, as the SDK sends it
    model_env = described["Fedsage"]["ModelEnvironment"]  # the SDK's model carries these
    assert model_env["SAGEMAKER_PROGRAM"] == "train.py"
    assert model_env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    assert model_env["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("sourcedir.tar.gz")
    assert described["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data}},
        "ContentType": "text/csv", "CompressionType": "None", "SplitType": "Line",
    }  # fmt: skip
    assert described["TransformOutput"] == {
        "S3OutputPath": f"s3://{BUCKET}/bt/shape-job-1", "AssembleWith": "Line",
        "Accept": "text/csv",
    }  # fmt: skip
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert described["CreationTime"] <= described["TransformStartTime"]
    assert described["TransformStartTime"] <= described["TransformEndTime"]
    assert "DataProcessing" not in described and "FailureReason" not in described
    assert transform_jobs.get("shape-job-1").request["Tags"] == [{"Key": "team", "Value": "ds"}]
    with pytest.raises(ConfigurationError, match="already exists"):
        transformer.transform(data, content_type="text/csv", job_name="shape-job-1")


def test_multirecord_bodies_stay_within_max_payload(dwc, handle, tmp_path) -> None:
    rows = [(float(i % 10), float(i % 7)) for i in range(120_000)]  # 960,000 bytes
    body = _csv(rows)
    data = _put(dwc, "bt/big/a.csv", body + body[:200_000], tmp_path)  # > 1 MiB
    transformer = handle.transformer(1, "local", strategy="MultiRecord", max_payload=1,
                                     assemble_with="Line", accept="text/csv")  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)
    (entry,) = transformer.latest_transform_job.describe()["Fedsage"]["Files"]
    assert entry["Requests"] == 2
    out = _predictions(_read(entry["Output"]))
    assert len(out) == entry["Records"] == 120_000 + 25_000
    assert out[:7] == pytest.approx([_expected(a, b) for a, b in rows[:7]], rel=1e-5)


def test_single_record_sends_one_row_per_request(dwc, handle, tmp_path) -> None:
    # The scikit-learn image's default handlers squeeze one CSV row to 1-D and predict
    # fails (HTTP 500); fedsage's server reshapes it to one row, so SingleRecord scores.
    data = _put(dwc, "bt/single/a.csv", _csv(ROWS), tmp_path)
    transformer = handle.transformer(1, "local", strategy="SingleRecord", assemble_with="Line",
                                     accept="text/csv")  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)
    (entry,) = transformer.latest_transform_job.describe()["Fedsage"]["Files"]
    assert entry["Requests"] == 5
    out = _predictions(_read(entry["Output"]))
    assert out == pytest.approx([_expected(a, b) for a, b in ROWS], rel=1e-5)


def test_a_failing_file_gets_no_out_and_the_others_do(dwc, handle, tmp_path, capsys) -> None:
    _put(dwc, "bt/fail/a.csv", _csv(ROWS), tmp_path)
    _put(dwc, "bt/fail/b.csv", b"1,2\n3,4\n5,6,7\n8,9\n", tmp_path)  # 3 features on line 3
    _put(dwc, "bt/fail/c.csv", _csv(ROWS[:3]), tmp_path)
    transformer = handle.transformer(1, "local", strategy="SingleRecord", assemble_with="Line",
                                     accept="text/csv")  # fmt: skip
    with pytest.raises(TransformJobError) as info:
        transformer.transform(f"s3://{BUCKET}/bt/fail/", content_type="text/csv",
                              split_type="Line")  # fmt: skip
    name = transformer.latest_transform_job.name
    assert str(info.value).startswith(f"Error for Transform job {name}: Failed. Reason: ")
    reason = transformer.latest_transform_job.describe()["FailureReason"]
    assert reason.startswith(f"ClientError: s3://{BUCKET}/bt/fail/b.csv: record 3 (line 3): ")
    assert "the model answered 400" in reason  # fedsage's server: the model rejected the input
    assert "size 2 is different from 3" in reason  # the model's own message
    assert _exists(f"{transformer.output_path}/a.csv.out")
    assert _exists(f"{transformer.output_path}/c.csv.out")
    assert not _exists(f"{transformer.output_path}/b.csv.out")
    assert len(_predictions(_read(f"{transformer.output_path}/c.csv.out"))) == 3
    printed = capsys.readouterr().out
    assert f"s3://{BUCKET}/bt/fail/b.csv: Failed" in printed
    assert "Job Failed" in printed


def test_join_source_and_filters_on_csv(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/join/a.csv", b'id1,1,2\nid2,3,4\n"id,3",0,0\n', tmp_path)
    transformer = handle.transformer(1, "local", strategy="MultiRecord", assemble_with="Line",
                                     accept="text/csv")  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False,
                          input_filter="$[1:]", join_source="Input",
                          output_filter="$[0,-1]")  # fmt: skip
    lines = _read(f"{transformer.output_path}/a.csv.out").decode().splitlines()
    ids = [line.rsplit(",", 1)[0] for line in lines]
    assert ids == ["id1", "id2", '"id,3"']
    values = [float(line.rsplit(",", 1)[1]) for line in lines]
    assert values == pytest.approx([_expected(1, 2), _expected(3, 4), 1.0], rel=1e-5)
    described = transformer.latest_transform_job.describe()
    assert described["DataProcessing"] == {
        "InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input",
    }  # fmt: skip


def test_join_appends_the_prediction_to_the_whole_row(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/join2/a.csv", b"1,2\n3,4\n", tmp_path)
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv")
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False,
                          join_source="Input")  # fmt: skip
    rows = [
        line.split(",")
        for line in _read(f"{transformer.output_path}/a.csv.out").decode().splitlines()
    ]
    assert [r[:2] for r in rows] == [["1", "2"], ["3", "4"]]
    assert [float(r[2]) for r in rows] == pytest.approx(
        [_expected(1, 2), _expected(3, 4)], rel=1e-5
    )


def test_json_lines_records_with_filters(dwc, handle, tmp_path) -> None:
    records = [{"id": 7, "features": [1, 2]}, {"id": 8, "features": [3, 4]}]
    data = _put(dwc, "bt/json/a.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode(),
                tmp_path)  # fmt: skip
    transformer = handle.transformer(1, "local", strategy="SingleRecord", assemble_with="Line",
                                     accept="application/json")  # fmt: skip
    transformer.transform(data, content_type="application/json", split_type="Line", logs=False,
                          input_filter="$.features", join_source="Input",
                          output_filter="$['id','SageMakerOutput']")  # fmt: skip
    lines = _read(f"{transformer.output_path}/a.jsonl.out").decode().splitlines()
    got = [json.loads(line) for line in lines]
    assert [g["id"] for g in got] == [7, 8]
    assert list(got[0]) == ["id", "SageMakerOutput"]
    assert [g["SageMakerOutput"] for g in got] == pytest.approx(
        [_expected(1, 2), _expected(3, 4)], rel=1e-5
    )


def test_a_record_above_max_payload_fails_its_file(dwc, handle, tmp_path) -> None:
    wide = ",".join(["1"] * 600_000).encode() + b"\n"  # 1.2 MB: above 1 MiB
    data = _put(dwc, "bt/wide/a.csv", b"1,2\n" + wide + b"3,4\n", tmp_path)
    transformer = handle.transformer(1, "local", max_payload=1, assemble_with="Line")
    with pytest.raises(TransformJobError, match=r"record 2 .line 2. is 1200000 bytes"):
        transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)
    assert not _exists(f"{transformer.output_path}/a.csv.out")


def test_whole_file_above_max_payload_without_split(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/whole/a.csv", b"1,2\n" * 300_000, tmp_path)  # 1.2 MB
    transformer = handle.transformer(1, "local", max_payload=1)
    with pytest.raises(TransformJobError, match=r"the file is 1200000 bytes.*split_type=.Line."):
        transformer.transform(data, content_type="text/csv", logs=False)


def test_gzip_input(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/gz/a.csv.gz", gzip.compress(_csv(ROWS)), tmp_path)
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv")
    transformer.transform(data, content_type="text/csv", split_type="Line",
                          compression_type="Gzip", logs=False)  # fmt: skip
    out = _predictions(_read(f"{transformer.output_path}/a.csv.gz.out"))
    assert out == pytest.approx([_expected(a, b) for a, b in ROWS], rel=1e-5)


def test_manifest_file(dwc, handle, tmp_path) -> None:
    _put(dwc, "bt/man/x/one.csv", _csv(ROWS[:1]), tmp_path)
    _put(dwc, "bt/man/y/two.csv", _csv(ROWS[:2]), tmp_path)
    _put(dwc, "bt/man/z/skipped.csv", _csv(ROWS), tmp_path)
    manifest = [{"prefix": f"s3://{BUCKET}/bt/man/"}, "x/one.csv", "y/two.csv"]
    data = _put(dwc, "bt/manifest.json", json.dumps(manifest).encode(), tmp_path)
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv")
    transformer.transform(data, data_type="ManifestFile", content_type="text/csv",
                          split_type="Line", logs=False)  # fmt: skip
    assert len(_predictions(_read(f"{transformer.output_path}/x/one.csv.out"))) == 1
    assert len(_predictions(_read(f"{transformer.output_path}/y/two.csv.out"))) == 2
    assert not _exists(f"{transformer.output_path}/z/skipped.csv.out")
    missing = [{"prefix": f"s3://{BUCKET}/bt/man/"}, "x/none.csv"]
    bad = _put(dwc, "bt/manifest-bad.json", json.dumps(missing).encode(), tmp_path)
    with pytest.raises(ConfigurationError, match=r"lists .*x/none.csv, which does not exist"):
        transformer.transform(bad, data_type="ManifestFile", content_type="text/csv")


def test_local_folder_input_and_file_output(dwc, handle, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(_csv(ROWS))
    target = tmp_path / "out"
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv",
                                     output_path=f"file://{target}")  # fmt: skip
    transformer.transform(str(folder), content_type="text/csv", split_type="Line", logs=False)
    assert len(_predictions((target / "a.csv.out").read_bytes())) == len(ROWS)


def test_wait_false_then_wait(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/bg/a.csv", _csv(ROWS), tmp_path)
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv")
    transformer.transform(data, content_type="text/csv", split_type="Line", wait=False)
    first = transformer.latest_transform_job.describe()["TransformJobStatus"]
    assert first in ("InProgress", "Completed")
    described = transformer.wait(logs=False)
    assert described["TransformJobStatus"] == "Completed"
    assert "TransformEndTime" in described
    assert _exists(f"{transformer.output_path}/a.csv.out")


def test_stop_transform_job(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/stop/a.csv", _csv(ROWS * 20_000), tmp_path)
    transformer = handle.transformer(1, "local", strategy="SingleRecord", accept="text/csv")
    transformer.transform(data, content_type="text/csv", split_type="Line", wait=False)
    transformer.stop_transform_job()
    described = transformer.latest_transform_job.describe()
    assert described["TransformJobStatus"] == "Stopped"
    assert not _exists(f"{transformer.output_path}/a.csv.out")
    with pytest.warns(UserWarning, match="was stopped"):
        transformer.wait(logs=False)


def test_execution_parameters_and_batch_variables(dwc, handle, tmp_path) -> None:
    data = _put(dwc, "bt/exec/a.csv", _csv(ROWS[:3]), tmp_path)
    env = {"TEST_EXECUTION_PARAMETERS": "1", "TEST_ECHO_ENV": "yes"}
    # Nothing requested: the container's /execution-parameters decides (SINGLE_RECORD).
    transformer = handle.transformer(1, "local", env=env, accept="application/json",
                                     assemble_with="Line")  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)
    described = transformer.latest_transform_job.describe()
    assert (described["MaxConcurrentTransforms"], described["BatchStrategy"],
            described["MaxPayloadInMB"]) == (2, "SingleRecord", 1)  # fmt: skip
    seen = [json.loads(line) for line in _read(f"{transformer.output_path}/a.csv.out").splitlines()]
    assert len(seen) == 3 and all(s["rows"] == 1 for s in seen)
    assert seen[0] == {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": None,
                       "SAGEMAKER_BATCH_STRATEGY": None, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": None,
                       "TEST_ECHO_ENV": "yes", "rows": 1}  # fmt: skip
    # Requested values win over the container's, and the container sees them.
    transformer = handle.transformer(1, "local", env=env, accept="application/json",
                                     strategy="MultiRecord", max_payload=4,
                                     max_concurrent_transforms=1, assemble_with="Line")  # fmt: skip
    transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)
    described = transformer.latest_transform_job.describe()
    assert (described["MaxConcurrentTransforms"], described["BatchStrategy"],
            described["MaxPayloadInMB"]) == (1, "MultiRecord", 4)  # fmt: skip
    (seen_one,) = [
        json.loads(line) for line in _read(f"{transformer.output_path}/a.csv.out").splitlines()
    ]
    assert seen_one["rows"] == 3
    assert (seen_one["SAGEMAKER_MAX_PAYLOAD_IN_MB"], seen_one["SAGEMAKER_BATCH_STRATEGY"],
            seen_one["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"]) == ("4", "MULTI_RECORD", "1")  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "call", "message"),
    [
        (
            {"max_payload": 101},
            {},
            "max_payload parameter of transformer must be an int from 0 to 100",
        ),
        ({"max_payload": 20, "max_concurrent_transforms": 6}, {}, "at most 100"),
        ({"strategy": "Many"}, {}, "strategy parameter of transformer must be one of"),
        ({"assemble_with": "Newline"}, {}, "assemble_with parameter"),
        ({"env": {"1BAD": "x"}}, {}, "has the key '1BAD'"),
        ({"env": {f"K{i}": "v" for i in range(17)}}, {}, "has 17 entries"),
        ({"instance_count": 0}, {}, "instance_count"),
        ({"output_path": "/tmp/x"}, {}, "output_path parameter of transformer must be an s3://"),
        ({"entry_point": "serve.py"}, {}, "entry_point parameter of transformer must be None"),
        ({"model_server_workers": 0}, {}, "model_server_workers"),
        ({}, {"split_type": "RecordIO"}, "not supported in local mode"),
        ({}, {"split_type": "Lines"}, "split_type parameter of transform must be"),
        ({}, {"compression_type": "Zip"}, "compression_type"),
        ({}, {"data_type": "Folder"}, "data_type"),
        ({}, {"job_name": "bad_name"}, "job_name parameter 'bad_name' is not a valid"),
        ({}, {"join_source": "Input"}, "split_type='Line'"),  # CSV without Line
        (
            {"accept": "text/csv"},
            {"join_source": "Input", "split_type": "Line"},
            "assemble_with='Line'",
        ),
        ({"assemble_with": "Line"}, {"input_filter": "$.a", "split_type": "Line"}, "names keys"),
        ({}, {"batch_data_capture_config": {"DestinationS3Uri": "s3://x/y"}}, "data capture"),
        ({}, {"model_client_config": {"InvocationsMaxRetries": 4}}, "InvocationsMaxRetries"),
        ({}, {"data": f"s3://{BUCKET}/bt/nothing-here/"}, "names no input file"),
        ({}, {"wait": "yes"}, "wait parameter of transform must be True or False"),
    ],
)
def test_bad_input_is_refused_before_any_work(
    dwc, handle, tmp_path, settings, call, message
) -> None:
    data = _put(dwc, "bt/bad/a.csv", _csv(ROWS), tmp_path)
    before = {job.name for job in transform_jobs.all()}
    arguments = {"data": data, "content_type": "text/csv", **call}
    with pytest.raises(ConfigurationError, match=message):
        transformer = handle.transformer(
            **{"instance_count": 1, "instance_type": "local", **settings}
        )
        transformer.transform(**arguments)
    assert {job.name for job in transform_jobs.all()} == before  # nothing recorded or run


def test_transformer_needs_a_completed_job(dwc, trained, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="needs a transform job"):
        _handle(dwc, trained[2]).transformer(1, "local").wait()


CHILD = textwrap.dedent(
    """
    import sys, time
    from fedsage import DwcSagemaker
    from fedsage.estimator import TrainingJobHandle

    dwc = DwcSagemaker(prefix="bt")
    description = dwc._backend.describe_training_job(sys.argv[1])
    handle = TrainingJobHandle.from_description(dwc._backend, description)
    transformer = handle.transformer(1, "local", strategy="SingleRecord", accept="text/csv")
    transformer.transform(sys.argv[2], content_type="text/csv", split_type="Line",
                          job_name=sys.argv[3], wait=False)
    print("started", flush=True)
    if sys.argv[4] == "hang":
        time.sleep(600)
    if sys.argv[4] == "exit-running":  # exit while requests are flowing
        from fedsage.scoring.transform_jobs import transform_jobs

        while not transform_jobs.get(sys.argv[3]).resolved:
            time.sleep(0.05)
        time.sleep(0.5)
    """
)


def _child(trained, data: str, name: str, how: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", CHILD, trained[2], data, name, how],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("when", ["exit", "exit-running"])
def test_a_job_is_stopped_when_its_process_exits(dwc, handle, trained, tmp_path, when) -> None:
    data = _put(dwc, f"bt/{when}/a.csv", _csv(ROWS * 20_000), tmp_path)
    name = f"{when}-job-1"
    child = _child(trained, data, name, when)
    assert child.wait(timeout=300) == 0
    described = transform_jobs.get(name)
    assert described.status == "Stopped"
    assert described.failure_reason is None  # stopped cleanly, not by an error
    assert not _exists(f"s3://{BUCKET}/bt/{name}/a.csv.out")
    if when == "exit-running":
        (entry,) = described.files
        assert entry["Status"] == "Stopped" and entry["Requests"] > 0
    servers = [e for e in dwc._backend.list_endpoints() if name in e["EndpointName"]]
    assert servers == []  # the temporary model server was deleted too


def test_a_killed_process_leaves_its_job_failed_not_in_progress(dwc, trained, tmp_path) -> None:
    import signal

    data = _put(dwc, "bt/kill/a.csv", _csv(ROWS * 20_000), tmp_path)
    child = _child(trained, data, "kill-job-1", "hang")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        assert transform_jobs.get("kill-job-1").status == "InProgress"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    described = _handle_job("kill-job-1").describe()
    assert described["TransformJobStatus"] == "Failed"
    assert f"(pid {child.pid}) exited before the job ended" in described["FailureReason"]
    for endpoint in dwc._backend.list_endpoints():  # the server a SIGKILL leaves behind
        if "kill-job-1" in endpoint["EndpointName"]:
            dwc._backend.delete_endpoint(endpoint["EndpointName"])


def _handle_job(name: str):  # type: ignore[no-untyped-def]
    from fedsage.scoring.transformer import TransformJob

    return TransformJob(name)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_dropped_request_is_retried(dwc, handle, tmp_path, retries) -> None:
    data = _put(dwc, f"bt/retry{retries}/a.csv", _csv(ROWS), tmp_path)
    marker = tmp_path / "died"
    transformer = handle.transformer(1, "local", assemble_with="Line", accept="text/csv",
                                     env={"TEST_DIE_ONCE": str(marker)})  # fmt: skip
    config = {"InvocationsMaxRetries": retries}
    if retries == 0:
        with pytest.raises(TransformJobError, match="Unable to get response from algorithm"):
            transformer.transform(data, content_type="text/csv", split_type="Line",
                                  model_client_config=config, logs=False)  # fmt: skip
        assert not _exists(f"{transformer.output_path}/a.csv.out")
    else:
        transformer.transform(data, content_type="text/csv", split_type="Line",
                              model_client_config=config, logs=False)  # fmt: skip
        out = _predictions(_read(f"{transformer.output_path}/a.csv.out"))
        assert out == pytest.approx([_expected(a, b) for a, b in ROWS], rel=1e-5)
    assert marker.exists()  # the worker did die once


def test_stop_from_another_process(dwc, trained, tmp_path) -> None:
    import signal
    import time

    data = _put(dwc, "bt/remote/a.csv", _csv(ROWS * 20_000), tmp_path)
    child = _child(trained, data, "remote-job-1", "hang")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        while not transform_jobs.get("remote-job-1").resolved:  # its server answers
            assert child.poll() is None
            time.sleep(0.05)
        _handle_job("remote-job-1").stop()  # waits until the other process has stopped it
        record = transform_jobs.get("remote-job-1")
        assert record.status == "Stopped" and record.failure_reason is None
        assert child.poll() is None  # the process lives on; only its job stopped
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert _handle_job("remote-job-1").describe()["TransformJobStatus"] == "Stopped"
    assert not _exists(f"s3://{BUCKET}/bt/remote-job-1/a.csv.out")
    assert [e for e in dwc._backend.list_endpoints() if "remote-job-1" in e["EndpointName"]] == []
