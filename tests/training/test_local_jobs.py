"""Local training jobs: real runner processes, real scripts, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage._process import alive as pid_alive
from fedsage.errors import ConfigurationError, TrainingError

PROBE = textwrap.dedent(
    """
    import json, os, sys
    tree = []
    for dirpath, dirs, files in os.walk("/opt/ml" if os.path.isdir("/opt/ml/code") else os.environ["SM_INPUT"].rsplit("/", 1)[0]):
        dirs.sort()
        for name in sorted(dirs + files):
            tree.append(os.path.join(dirpath, name))
    report = {
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "SAGEMAKER_", "TRAINING_", "AWS_", "CURRENT_HOST", "PYTHON"))},
        "tree": tree,
        "exists_opt_ml": os.path.isdir("/opt/ml/model"),
    }
    if __name__ == "__main__":
        with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "probe.json"), "w") as out:
            json.dump(report, out)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("m")
    """
)

HARDCODED = textwrap.dedent(
    """
    import os
    if __name__ == "__main__":
        rows = open("/opt/ml/input/data/train/train.csv").read().splitlines()
        with open("/opt/ml/model/rows.txt", "w") as out:
            out.write(str(len(rows)))
        os.makedirs("/opt/ml/model/sub", exist_ok=True)
        open("/opt/ml/model/sub/x.txt", "w").write("x")
    """
)


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def dwc(workdir: Path) -> DwcSagemaker:
    return DwcSagemaker(prefix="tests")


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({"y": [0, 1, 0, 1], "a": [1.0, 2.0, 3.0, 4.0], "b": [5, 6, 7, 8]})


def _script(folder: Path, body: str, name: str = "train.py") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def _members(store_file: Path) -> list[str]:
    with tarfile.open(store_file) as tar:
        return sorted(tar.getnames())


def _store_path(dwc: DwcSagemaker, uri: str) -> Path:
    key = uri[len("s3://") :].split("/", 1)[1]
    return dwc._backend.store.path(key)  # type: ignore[attr-defined]


def test_probe_sees_the_container_contract(dwc, workdir, frame):
    script = _script(workdir, PROBE)
    handle = dwc.train_sklearn_model(
        frame,
        test_data=frame,
        content_type="text/csv",
        train_script=str(script),
        hyperparameters={"flag": True, "k": 3, "layers": [1, 2], "name": "two words"},
        framework_version="host",
        download_output=True,
        logs="None",
    )
    report = json.loads((workdir / handle.job_name / "output" / "probe.json").read_text())
    assert report["argv"][1:] == ["--flag", "True", "-k", "3", "--layers", "[1, 2]", "--name", "two words"]
    assert report["cwd"] == "/opt/ml/code"
    assert report["exists_opt_ml"] is True
    env = report["env"]
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CHANNEL_TEST"] == "/opt/ml/input/data/test"
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_HP_FLAG"] == "true"
    assert env["SM_HP_LAYERS"] == "[1,2]"
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CURRENT_HOST"] == "algo-1" and env["SM_HOSTS"] == '["algo-1"]'
    assert env["TRAINING_JOB_NAME"] == handle.job_name
    assert env["SM_MODULE_DIR"].endswith(f"/{handle.job_name}/source/sourcedir.tar.gz")
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["PYTHONUNBUFFERED"] == "1"
    tree = set(report["tree"])
    for path in (
        "/opt/ml/input/config/hyperparameters.json",
        "/opt/ml/input/config/inputdataconfig.json",
        "/opt/ml/input/config/resourceconfig.json",
        "/opt/ml/input/data/train/train.csv",
        "/opt/ml/input/data/test/test.csv",
        "/opt/ml/code/train.py",
        "/opt/ml/model",
        "/opt/ml/output/data",
    ):
        assert path in tree, path
    job_root = Path(handle.describe()["Fedsage"]["JobDir"]) / "opt_ml"
    config = json.loads((job_root / "input/config/inputdataconfig.json").read_text())
    assert config["train"]["ContentType"] == "text/csv"
    hps = json.loads((job_root / "input/config/hyperparameters.json").read_text())
    assert hps["flag"] == "true" and hps["name"] == '"two words"'
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_job_name"]) == handle.job_name
    # DataFrames are written without header and without index.
    assert (job_root / "input/data/train/train.csv").read_text().splitlines()[0] == "0,1.0,5"
    assert (job_root / "output/success").exists()


def test_script_with_hardcoded_opt_ml_paths(dwc, workdir, frame):
    script = _script(workdir, HARDCODED)
    handle = dwc.train_sklearn_model(
        frame, train_script=str(script), framework_version="host", wait=True, logs="None"
    )
    model = _store_path(dwc, handle.model_data)
    assert _members(model) == ["rows.txt", "sub", "sub/x.txt"]
    with tarfile.open(model) as tar:
        assert tar.extractfile("rows.txt").read() == b"4"  # type: ignore[union-attr]
    assert handle.model_data.endswith(f"tests/{handle.job_name}/output/model.tar.gz")


def test_artifact_keys_and_sourcedir(dwc, workdir, frame):
    src = workdir / "src"
    src.mkdir()
    _script(src, "import helper\nif __name__ == '__main__':\n    helper.run()\n")
    (src / "helper.py").write_text(
        "import os\ndef run():\n    open(os.environ['SM_MODEL_DIR'] + '/ok', 'w').write('1')\n"
    )
    handle = dwc.train_sklearn_model(
        frame, train_script="train.py", source_dir=str(src), framework_version="host",
        wait=True, logs="None",
    )
    store = dwc._backend.store
    keys = store.list(f"tests/{handle.job_name}/")
    assert f"tests/{handle.job_name}/source/sourcedir.tar.gz" in keys
    assert f"tests/{handle.job_name}/output/model.tar.gz" in keys
    assert f"tests/{handle.job_name}/output/output.tar.gz" in keys
    assert f"tests/{handle.job_name}/data/train/train.csv" in keys
    source = store.path(f"tests/{handle.job_name}/source/sourcedir.tar.gz")
    assert _members(source) == ["helper.py", "train.py"]
    # Without source_dir only the entry script is packed.
    lone = _script(workdir, "if __name__ == '__main__':\n    pass\n", "lone.py")
    (workdir / "other.py").write_text("")
    second = dwc.train_sklearn_model(
        frame, train_script=str(lone), framework_version="host", wait=True, logs="None"
    )
    assert _members(store.path(f"tests/{second.job_name}/source/sourcedir.tar.gz")) == ["lone.py"]


def test_failed_script_reports_reason_and_writes_no_model(dwc, workdir, frame):
    script = _script(workdir, "raise ValueError('bad column name: price')\n")
    with pytest.raises(TrainingError) as info:
        dwc.train_sklearn_model(
            frame, train_script=str(script), framework_version="host", wait=True, logs="None"
        )
    error = info.value
    assert error.status == "Failed"
    assert error.job_name in str(error)
    assert "ExecuteUserScriptError" in error.reason
    assert "bad column name: price" in error.reason
    described = dwc.describe_training_job(error.job_name)
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError")
    assert len(described["FailureReason"]) <= 1024
    assert not dwc._backend.store.exists(f"tests/{error.job_name}/output/model.tar.gz")


def test_script_controls_its_failure_file(dwc, workdir, frame):
    script = _script(
        workdir,
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('my reason')\n"
        "sys.exit(3)\n",
    )
    handle = dwc.train_sklearn_model(
        frame, train_script=str(script), framework_version="host", logs="None"
    )
    result = handle.latest_training_job._backend.wait_training_job(
        handle.job_name, logs="None", raise_on_failure=False
    )
    assert result["FailureReason"] == "AlgorithmError: my reason"


def test_stop_kills_the_script_and_records_stopped(dwc, workdir, frame):
    pid_file = workdir / "pid"
    script = _script(
        workdir,
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n",
    )
    handle = dwc.train_sklearn_model(frame, train_script=str(script), framework_version="host")
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    handle.stop()
    assert handle.describe()["TrainingJobStatus"] == "Stopped"
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    assert not dwc._backend.store.exists(f"tests/{handle.job_name}/output/model.tar.gz")


def test_wait_false_returns_at_once_and_job_survives_its_parent(workdir, frame):
    # The script blocks until the test releases it, so "returned at once" is proven by the
    # status, not by a clock.
    gate = workdir / "release"
    script = _script(
        workdir,
        "import os, time\nif __name__ == '__main__':\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        time.sleep(0.05)\n",
    )
    frame.to_csv(workdir / "data.csv", header=False, index=False)
    code = textwrap.dedent(
        f"""
        from fedsage import DwcSagemaker
        h = DwcSagemaker(prefix="tests").train_sklearn_model(
            "file://{workdir}/data.csv", train_script={str(script)!r}, framework_version="host")
        print(h.job_name, h.describe()["TrainingJobStatus"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=workdir
    ).stdout.split()
    job_name, status = out[0], out[1]
    assert status == "InProgress"
    dwc = DwcSagemaker(prefix="tests")
    # The notebook process has exited; the job goes on without it.
    assert dwc.describe_training_job(job_name)["TrainingJobStatus"] == "InProgress"
    gate.touch()
    final = dwc._backend.wait_training_job(job_name, logs="None")
    assert final["TrainingJobStatus"] == "Completed"


def test_logs_all_prints_like_sagemaker_and_none_is_silent(dwc, workdir, frame, capsys):
    script = _script(workdir, "print('hello from the script')\n")
    dwc.train_sklearn_model(frame, train_script=str(script), framework_version="host", wait=True)
    out = capsys.readouterr().out
    assert "hello from the script" in out
    assert "Training - Training image download completed" in out
    assert "Completed - Training job completed" in out
    dwc.train_sklearn_model(
        frame, train_script=str(script), framework_version="host", wait=True, logs="None"
    )
    assert capsys.readouterr().out == ""


def test_file_inputs(dwc, workdir, frame):
    folder = workdir / "parts"
    folder.mkdir()
    frame.to_csv(folder / "a.csv", header=False, index=False)
    frame.to_json(folder / "b.json.gz", orient="records", lines=True, compression="gzip")
    (workdir / "notes.txt").write_text("x\n")
    script = _script(
        workdir,
        "import os\nif __name__ == '__main__':\n"
        "    names = sorted(os.listdir(os.environ['SM_CHANNEL_TRAIN']))\n"
        "    names += sorted(os.listdir(os.environ['SM_CHANNEL_TEST']))\n"
        "    open(os.environ['SM_MODEL_DIR'] + '/names', 'w').write(','.join(names))\n",
    )
    handle = dwc.train_sklearn_model(
        f"file://{folder}", f"file://{workdir}/notes.txt", train_script=str(script),
        framework_version="host", wait=True, logs="None",
    )
    with tarfile.open(_store_path(dwc, handle.model_data)) as tar:
        assert tar.extractfile("names").read() == b"a.csv,b.json.gz,notes.txt"  # type: ignore[union-attr]
    # An s3:// URI of the store is used as it is, without a copy.
    train_uri = handle.describe()["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"]
    again = dwc.train_sklearn_model(
        train_uri, train_script=str(script), framework_version="host",
        logs="None",
    )
    assert again.describe()["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == train_uri


def test_download_output_extracts_into_job_folder(dwc, workdir, frame):
    script = _script(
        workdir,
        "import os\nopen(os.environ['SM_OUTPUT_DATA_DIR'] + '/report.txt', 'w').write('r')\n",
    )
    handle = dwc.train_sklearn_model(
        frame, train_script=str(script), framework_version="host", download_output=True,
        logs="None",
    )
    assert (workdir / handle.job_name / "output" / "report.txt").read_text() == "r"


def test_sandbox_fallback_warns_and_uses_the_job_folder(dwc, workdir, frame, monkeypatch):
    monkeypatch.setenv("FEDSAGE_SANDBOX", "0")
    script = _script(workdir, PROBE)
    handle = dwc.train_sklearn_model(
        frame, train_script=str(script), framework_version="host", download_output=True,
        logs="None",
    )
    report = json.loads((workdir / handle.job_name / "output" / "probe.json").read_text())
    job_root = Path(handle.describe()["Fedsage"]["JobDir"]) / "opt_ml"
    assert report["env"]["SM_MODEL_DIR"] == str(job_root / "model")
    assert report["cwd"] == str(job_root / "code")
    warnings = handle.describe()["Fedsage"]["Warnings"]
    assert any("private /opt/ml" in w for w in warnings)


def test_handle_is_estimator_like(dwc, workdir, frame):
    script = _script(workdir, "pass\n")
    handle = dwc.train_sklearn_model(
        frame, train_script=str(script), base_job_name="iris-rf", framework_version="host",
        hyperparameters={"n": 5}, wait=True, logs="None",
    )
    assert handle.latest_training_job.name == handle.job_name
    assert handle.job_name.startswith("iris-rf-") and len(handle.job_name) <= 63
    assert handle.base_job_name == "iris-rf"
    assert handle.hyperparameters()["n"] == "5"
    assert json.loads(handle.hyperparameters()["sagemaker_program"]) == "train.py"
    described = handle.describe()
    for key in (
        "TrainingJobStatus", "SecondaryStatus", "ModelArtifacts", "HyperParameters",
        "AlgorithmSpecification", "OutputDataConfig", "CreationTime", "TrainingStartTime",
        "TrainingEndTime",
    ):
        assert key in described, key
    statuses = [t["Status"] for t in described["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert described["CreationTime"] <= described["TrainingEndTime"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_script": "missing.py"}, "train_script"),
        ({"content_type": "text/csv\n"}, "content_type"),
        ({"train_data": pd.DataFrame()}, "train_data.*empty"),
        ({"hyperparameters": {"x": object()}}, "hyperparameters"),
        ({"instance_count": 2}, "instance_count.*distributed"),
        ({"instance_type": "m5.large"}, "instance_type"),
        ({"instance_type": "ml.p3.2xlarge"}, "instance_type.*CPU"),
        ({"logs": "Some"}, "logs"),
        ({"wait": "yes"}, "wait"),
        ({"base_job_name": "no_underscores"}, "base_job_name"),
        ({"framework_version": "0.99"}, "0.23-1"),
        ({"train_data": "file:///nope/data.csv"}, "train_data"),
        ({"train_data": "s3://fedsage-local/none/"}, "train_data"),
        ({"train_data": 42}, "train_data parameter must be"),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(dwc, workdir, frame, kwargs, match):
    script = _script(workdir, "pass\n")
    arguments = {"train_data": frame, "train_script": str(script), **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        dwc.train_sklearn_model(**arguments)
    home = Path(os.environ["FEDSAGE_HOME"])
    assert not (home / "jobs").exists()
    assert dwc._backend.store.list("") == []


def test_bad_input_scheme_and_bucket_name(workdir):
    with pytest.raises(ConfigurationError, match="bucket"):
        DwcSagemaker(bucket_name="Bad_Bucket")
    (workdir / "t.py").write_text("pass\n")
    with pytest.raises(ConfigurationError, match=r"train_data.*https:// URI"):
        DwcSagemaker().train_sklearn_model("https://example.com/data.xlsx", train_script="t.py")


def test_one_default_bucket(workdir):
    assert DwcSagemaker().bucket_name == DwcSagemaker(prefix="other").bucket_name == "fedsage-local"
    with pytest.raises(ConfigurationError, match="mode"):
        DwcSagemaker(mode="cloud")


def test_version_honesty_warns_for_the_host_runtime(dwc, workdir, frame):
    script = _script(workdir, "pass\n")
    with pytest.warns(UserWarning, match="matches no SageMaker scikit-learn image"):
        handle = dwc.train_sklearn_model(
            frame, train_script=str(script), framework_version="host", wait=True, logs="None"
        )
    described = handle.describe()
    assert described["Fedsage"]["Runtime"]["packages"]["scikit-learn"]
    assert any("matches no SageMaker" in w for w in described["Fedsage"]["Warnings"])


def test_dbconnection_sources_stream_into_channels(dwc, workdir):
    from fedsage import DbConnection
    from fedsage.data.samples import load_samples

    conn = DbConnection.embedded()
    try:
        load_samples(conn)
        script = _script(
            workdir,
            "import os\nif __name__ == '__main__':\n"
            "    rows = open(os.environ['SM_CHANNEL_TRAIN'] + '/train.csv').read().splitlines()\n"
            "    test = open(os.environ['SM_CHANNEL_TEST'] + '/test.csv').read().splitlines()\n"
            "    open(os.environ['SM_MODEL_DIR'] + '/n', 'w').write('%d %d %s' % (len(rows), len(test), rows[0]))\n",
        )
        handle = dwc.train_sklearn_model(
            conn.table("IRIS"),
            conn.query('SELECT "SPECIES" FROM "IRIS" WHERE "PETAL_WIDTH" > ?', params=[2.0]),
            train_script=str(script), framework_version="host", wait=True, logs="None",
        )
    finally:
        conn.close()
    with tarfile.open(_store_path(dwc, handle.model_data)) as tar:
        n_train, n_test, first = tar.extractfile("n").read().decode().split(" ", 2)  # type: ignore[union-attr]
    assert (int(n_train), int(n_test)) == (150, 23)
    assert "SEPAL" not in first  # no header row


def test_ctrl_c_while_waiting_stops_the_job(workdir, frame):
    import signal

    script = _script(workdir, "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    frame.to_csv(workdir / "data.csv", header=False, index=False)
    code = textwrap.dedent(
        f"""
        from fedsage import DwcSagemaker
        try:
            DwcSagemaker(prefix="tests").train_sklearn_model(
                "file://{workdir}/data.csv", train_script={str(script)!r},
                framework_version="host", wait=True)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=workdir, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "started":
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert "interrupted" in rest
    (job,) = DwcSagemaker(prefix="tests")._backend.list_training_jobs()
    assert job["TrainingJobStatus"] == "Stopped"


def test_requirements_go_into_a_cached_overlay_not_the_environment(dwc, workdir, frame):
    import importlib.util

    assert importlib.util.find_spec("tabulate") is None  # not in fedsage's environment
    src = workdir / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("tabulate==0.9.0\n")
    _script(
        src,
        "import os, tabulate\nif __name__ == '__main__':\n"
        "    open(os.environ['SM_MODEL_DIR'] + '/v', 'w').write(tabulate.__version__)\n",
    )
    handle = dwc.train_sklearn_model(
        frame, train_script="train.py", source_dir=str(src), framework_version="host",
        wait=True, logs="None",
    )
    with tarfile.open(_store_path(dwc, handle.model_data)) as tar:
        assert tar.extractfile("v").read() == b"0.9.0"  # type: ignore[union-attr]
    assert importlib.util.find_spec("tabulate") is None
    root = Path(os.environ["FEDSAGE_HOME"]) / "overlays"
    overlays = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    assert len(overlays) == 1
    # The same requirements again reuse the overlay.
    dwc.train_sklearn_model(
        frame, train_script="train.py", source_dir=str(src), framework_version="host",
        wait=True, logs="None",
    )
    assert sorted(p for p in root.iterdir() if not p.name.startswith(".")) == overlays


def test_uninstallable_requirements_fail_the_job_clearly(dwc, workdir, frame):
    src = workdir / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("no-such-package-fedsage-test==9.9.9\n")
    _script(src, "pass\n")
    with pytest.raises(TrainingError) as info:
        dwc.train_sklearn_model(
            frame, train_script="train.py", source_dir=str(src), framework_version="host",
            wait=True, logs="None",
        )
    assert "requirements.txt" in info.value.reason
    assert "no-such-package-fedsage-test" in info.value.reason
