"""The estimator settings in local mode: the job's own environment, metrics, max_run,
where artifacts go, dependencies, checkpoints, network isolation, and what is recorded."""

from __future__ import annotations

import json
import socket
import tarfile
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest
from _cli import invoke

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError
from fedsage.storage import LocalStore
from fedsage.storage.local import store_root

FRAME = pd.DataFrame({"a": [1.0, 2.0]})


@pytest.fixture()
def dwc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DwcSagemaker:
    monkeypatch.chdir(tmp_path)
    return DwcSagemaker(prefix="settings")


def _run(dwc: DwcSagemaker, tmp_path: Path, body: str, **kwargs):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    kwargs.setdefault("wait", True)
    return dwc.train_sklearn_model(
        FRAME, train_script=str(script), framework_version="host", logs="None", **kwargs
    )


def _output(tmp_path: Path, handle) -> dict:
    (tmp_path / "out").mkdir(exist_ok=True)
    handle._backend.download_output(handle.job_name, tmp_path / "out")
    return json.loads((tmp_path / "out" / "seen.json").read_text())


ENV_PROBE = """
import json, os
keys = ("NOTEBOOK_ONLY_SECRET", "AWS_SECRET_ACCESS_KEY", "FEDSAGE_HOME", "MY_SETTING", "LANG",
        "PATH", "SM_MODEL_DIR", "PYTHONUNBUFFERED")
seen = {k: os.environ.get(k) for k in keys}
json.dump(seen, open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w"))
open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
"""


def test_the_job_sees_only_its_own_environment(
    dwc: DwcSagemaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEBOOK_ONLY_SECRET", "from-the-notebook")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "notebook-credentials")
    monkeypatch.setenv("LANG", "C.UTF-8")
    handle = _run(dwc, tmp_path, ENV_PROBE, environment={"MY_SETTING": "42"})
    seen = _output(tmp_path, handle)
    assert seen["NOTEBOOK_ONLY_SECRET"] is None
    assert seen["AWS_SECRET_ACCESS_KEY"] is None
    assert seen["FEDSAGE_HOME"] is None
    assert seen["MY_SETTING"] == "42"
    assert seen["LANG"] == "C.UTF-8"
    assert seen["SM_MODEL_DIR"] == "/opt/ml/model" and seen["PYTHONUNBUFFERED"] == "1"
    assert seen["PATH"].split(":")[-1] == "/bin"
    assert handle.describe()["Environment"] == {"MY_SETTING": "42"}


METRICS = r"""
import os, time
print("epoch 1: accuracy=0.50 loss=1.5", flush=True)
time.sleep(0.05)
print("epoch 2: accuracy=0.75 loss=0.9", flush=True)
print("[0]\ttrain-rmse:0.35008\tvalidation-rmse:0.35452", flush=True)
print("accuracy=not-a-number", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
"""


def test_metric_definitions_are_matched_against_the_log(
    dwc: DwcSagemaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definitions = [
        {"Name": "accuracy", "Regex": r"accuracy=([0-9.]+)"},
        {"Name": "loss", "Regex": r"loss=([0-9.]+)"},
        # written as for SageMaker's log store, where a tab reads #011
        {"Name": "validation:rmse", "Regex": r".*\[[0-9]+\].*#011validation-rmse:(\S+)"},
    ]
    handle = _run(dwc, tmp_path, METRICS, metric_definitions=definitions)
    described = handle.describe()
    final = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert final == {"accuracy": 0.75, "loss": 0.9, "validation:rmse": 0.35452}
    assert described["AlgorithmSpecification"]["MetricDefinitions"] == definitions
    frame = handle.training_job_analytics.dataframe()
    assert list(frame.columns) == ["timestamp", "metric_name", "value"]
    assert frame[frame.metric_name == "accuracy"].value.tolist() == [0.5, 0.75]
    assert (frame.timestamp >= 0).all()
    monkeypatch.setenv("COLUMNS", "200")
    printed = invoke(["jobs", "metrics", handle.job_name])
    assert printed.exit_code == 0, printed.output
    assert printed.output.count("accuracy") == 2 and "0.35452" in printed.output


SLOW = """
import os, time
open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w").write("saved early")
print("started", flush=True)
time.sleep(60)
"""


def test_max_run_stops_the_job_as_max_runtime_exceeded(dwc: DwcSagemaker, tmp_path: Path) -> None:
    handle = _run(dwc, tmp_path, SLOW, max_run=2)
    described = handle.describe()
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert described["FailureReason"].startswith("MaxRuntimeExceeded")
    assert described["StoppingCondition"]["MaxRuntimeInSeconds"] == 2
    # What the script saved before the limit is kept, as on SageMaker.
    model = handle.model_data.split("/", 3)[3]
    with tarfile.open(dwc._backend.store.path(model)) as tar:  # type: ignore[attr-defined]
        assert tar.getnames() == ["partial.txt"]


SAVES = """
import os

def model_fn(model_dir):
    return open(os.path.join(model_dir, "m.txt")).read()

def predict_fn(data, model):
    return [model]

if __name__ == "__main__":
    open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write("model")
    open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "o.txt"), "w").write("output")
"""


def test_output_path_and_code_location_move_the_artifacts(
    dwc: DwcSagemaker, tmp_path: Path
) -> None:
    into_folder = _run(dwc, tmp_path, SAVES, output_path=f"file://{tmp_path}/artifacts")
    assert into_folder.model_data == f"file://{tmp_path}/artifacts/model.tar.gz"
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [
        "model.tar.gz", "output.tar.gz"
    ]
    other = _run(
        dwc, tmp_path, SAVES,
        output_path="s3://team-models/runs", code_location="s3://team-code/src",
    )
    job = other.job_name
    assert other.model_data == f"s3://team-models/runs/{job}/output/model.tar.gz"
    assert LocalStore(store_root(), "team-models").exists(f"runs/{job}/output/model.tar.gz")
    assert LocalStore(store_root(), "team-code").exists(f"src/{job}/source/sourcedir.tar.gz")
    assert other.describe()["OutputDataConfig"]["S3OutputPath"] == "s3://team-models/runs"
    # A model stored elsewhere still deploys, and its code comes from code_location.
    endpoint = dwc.deploy(other, 1, "local", cleanup_resources=False)
    try:
        answer = dwc.predict(endpoint, "1", content_type="text/csv", accept="application/json")
        assert json.loads(answer) == ["model"]
    finally:
        dwc.delete_endpoint(endpoint)


USES_DEPENDENCIES = """
import os
import helper_mod
from helper_pkg import VALUE
open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write(helper_mod.NAME + VALUE)
"""


def test_dependencies_are_copied_beside_the_entry_point(
    dwc: DwcSagemaker, tmp_path: Path
) -> None:
    (tmp_path / "libs" / "helper_pkg").mkdir(parents=True)
    (tmp_path / "libs" / "helper_pkg" / "__init__.py").write_text("VALUE = '-pkg'\n")
    (tmp_path / "libs" / "helper_mod.py").write_text("NAME = 'mod'\n")
    handle = _run(
        dwc, tmp_path, USES_DEPENDENCIES,
        dependencies=[str(tmp_path / "libs" / "helper_mod.py"), "libs/helper_pkg"],
    )
    assert handle.describe()["TrainingJobStatus"] == "Completed"
    model = handle.model_data.split("/", 3)[3]
    with tarfile.open(dwc._backend.store.path(model)) as tar:  # type: ignore[attr-defined]
        member = tar.extractfile("m.txt")
        assert member is not None and member.read() == b"mod-pkg"


CHECKPOINTS = """
import os
folder = "/opt/ml/checkpoints"
earlier = open(os.path.join(folder, "epoch-1.ckpt")).read()
open(os.path.join(folder, "epoch-2.ckpt"), "w").write(earlier + "+2")
open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write("m")
"""


def test_checkpoints_are_restored_and_saved(dwc: DwcSagemaker, tmp_path: Path) -> None:
    store = LocalStore(store_root(), "checkpoints-bucket")
    (tmp_path / "first.ckpt").write_text("1")
    store.put_file("run-7/epoch-1.ckpt", tmp_path / "first.ckpt")
    handle = _run(dwc, tmp_path, CHECKPOINTS, checkpoint_s3_uri="s3://checkpoints-bucket/run-7")
    assert handle.describe()["TrainingJobStatus"] == "Completed", handle.describe()
    assert store.list("run-7/") == ["run-7/epoch-1.ckpt", "run-7/epoch-2.ckpt"]
    assert store.path("run-7/epoch-2.ckpt").read_text() == "1+2"
    assert handle.describe()["CheckpointConfig"] == {
        "S3Uri": "s3://checkpoints-bucket/run-7", "LocalPath": "/opt/ml/checkpoints"
    }
    with pytest.raises(ConfigurationError, match=r"checkpoint_local_path.*under /opt/ml"):
        _run(
            dwc, tmp_path, CHECKPOINTS,
            checkpoint_s3_uri="s3://checkpoints-bucket/run-8", checkpoint_local_path="/tmp/ck",
        )


DIALS = """
import json, os, socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
    reached = True
except OSError:
    reached = False
json.dump({"reached": reached}, open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w"))
open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
"""


def test_network_isolation_gives_the_script_no_network(dwc: DwcSagemaker, tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = threading.Thread(target=lambda: [server.accept() for _ in range(2)], daemon=True)
    accepted.start()
    try:
        open_job = _run(dwc, tmp_path, DIALS, hyperparameters={"port": port})
        assert _output(tmp_path, open_job) == {"reached": True}
        closed = _run(
            dwc, tmp_path, DIALS, hyperparameters={"port": port}, enable_network_isolation=True
        )
        assert _output(tmp_path, closed) == {"reached": False}
        assert closed.describe()["EnableNetworkIsolation"] is True
    finally:
        server.close()


def test_settings_without_a_local_meaning_are_recorded(dwc: DwcSagemaker, tmp_path: Path) -> None:
    handle = _run(
        dwc, tmp_path, SAVES,
        tags=[{"Key": "team", "Value": "ml"}],
        subnets=["subnet-0abc"],
        security_group_ids=["sg-0def"],
        volume_kms_key="alias/volumes",
        output_kms_key="alias/outputs",
        use_spot_instances=True,
        max_wait=7200,
        max_run=3600,
        volume_size=50,
    )
    described = handle.describe()
    assert described["VpcConfig"] == {"Subnets": ["subnet-0abc"], "SecurityGroupIds": ["sg-0def"]}
    assert described["ResourceConfig"]["VolumeSizeInGB"] == 50
    assert described["ResourceConfig"]["VolumeKmsKeyId"] == "alias/volumes"
    assert described["OutputDataConfig"]["KmsKeyId"] == "alias/outputs"
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert described["Fedsage"]["Tags"] == [{"Key": "team", "Value": "ml"}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environment": {"1BAD": "x"}}, "environment"),
        ({"environment": {"OK": 1}}, "environment"),
        ({"metric_definitions": [{"Name": "a"}]}, "metric_definitions"),
        ({"metric_definitions": [{"Name": "a", "Regex": "("}]}, "metric_definitions"),
        ({"metric_definitions": [{"Name": "a", "Regex": "no group"}]}, "captures the value"),
        ({"max_run": 0}, "max_run"),
        ({"output_path": "/not/a/uri"}, "output_path"),
        ({"code_location": "file:///tmp/code"}, "code_location"),
        ({"dependencies": ["no/such/file.py"]}, "dependencies"),
        ({"tags": [{"Key": "team"}]}, "tags"),
        ({"subnets": ["subnet-1"]}, "security_group_ids"),
        ({"use_spot_instances": True}, "max_wait"),
        ({"use_spot_instances": True, "max_wait": 10, "max_run": 20}, "max_wait"),
        ({"checkpoint_s3_uri": "file:///tmp"}, "checkpoint_s3_uri"),
        ({"enable_network_isolation": "yes"}, "enable_network_isolation"),
        ({"volume_size": -1}, "volume_size"),
    ],
)
def test_bad_settings_name_the_parameter_before_anything_starts(
    dwc: DwcSagemaker, tmp_path: Path, kwargs: dict, message: str
) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    with pytest.raises(ConfigurationError, match=message):
        dwc.train_sklearn_model(FRAME, train_script="train.py", framework_version="host", **kwargs)
    assert dwc._backend.list_training_jobs() == []
