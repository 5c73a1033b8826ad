"""DwcSagemaker.deploy / predict / delete_endpoint in local mode, with real servers."""

from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage._process import alive as pid_alive
from fedsage.errors import ConfigurationError, EndpointError, InvocationError

SCRIPT = textwrap.dedent(
    """
    import os
    import joblib
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LinearRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One job shared by the tests below (its FEDSAGE_HOME is the module's own)."""
    home = tmp_path_factory.mktemp("deploy-home")
    work = tmp_path_factory.mktemp("deploy-work")
    (work / "train.py").write_text(SCRIPT)
    frame = pd.DataFrame({"y": [3.0, 5.0, 7.0, 9.0], "x": [1.0, 2.0, 3.0, 4.0]})  # y = 2x + 1
    return home, work, frame


@pytest.fixture()
def dwc(trained, monkeypatch):
    home, work, _ = trained
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    monkeypatch.chdir(work)
    return DwcSagemaker(prefix="deploy")


def _train(dwc, frame):
    return dwc.train_sklearn_model(
        frame, train_script="train.py", framework_version="host", wait=True, logs="None"
    )


def test_train_deploy_predict_delete(dwc, trained):
    handle = _train(dwc, trained[2])
    data_prefix = f"deploy/{handle.job_name}/data/"
    assert dwc._backend.store.list(data_prefix)
    name = dwc.deploy(handle, initial_instance_count=1, instance_type="ml.m5.large")
    try:
        assert dwc._backend.store.list(data_prefix) == []  # cleanup_resources=True
        assert dwc._backend.store.exists(f"deploy/{handle.job_name}/output/model.tar.gz")
        answer = dwc.predict(name, "5.0", content_type="text/csv", accept="application/json")
        assert isinstance(answer, str)
        assert json.loads(answer) == pytest.approx([11.0])
        assert answer.startswith("[") and ", " not in answer  # one value; json.dumps layout
        two = dwc.predict(name, b"1\n2\n", content_type="text/csv", accept="text/csv")
        assert [float(v) for v in two.split()] == pytest.approx([3.0, 5.0])
        buffer = io.BytesIO()
        np.save(buffer, np.array([[4.0]]))
        npy = dwc.predict(
            name, buffer.getvalue(), content_type="application/x-npy", accept="application/x-npy"
        )
        assert isinstance(npy, bytes)
        assert np.load(io.BytesIO(npy)).tolist() == pytest.approx([9.0])
        with pytest.raises(InvocationError) as info:
            dwc.predict(name, "a,b", content_type="text/csv", accept="application/json")
        assert info.value.status_code == 400
        with pytest.raises(InvocationError) as info:
            dwc.predict(name, "1", content_type="text/xml", accept="application/json")
        assert info.value.status_code == 415
        with pytest.raises(EndpointError, match=name):
            dwc.deploy(handle, 1, "local", endpoint_name=name)
        pid = next(e for e in dwc._backend.list_endpoints() if e["EndpointName"] == name)[
            "Local"
        ]["pid"]
        assert pid_alive(pid)
    finally:
        dwc.delete_endpoint(name)
    assert not pid_alive(pid)
    assert all(e["EndpointName"] != name for e in dwc._backend.list_endpoints())


def test_deploy_by_job_name_keeps_data_when_asked(dwc, trained):
    handle = _train(dwc, trained[2])
    name = dwc.deploy(
        handle.job_name, 1, "local", endpoint_name="by-name", cleanup_resources=False
    )
    try:
        assert dwc._backend.store.list(f"deploy/{handle.job_name}/data/")
        assert json.loads(dwc.predict(name, "[[1.0]]")) == pytest.approx([3.0])
    finally:
        dwc.delete_endpoint(name)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((None, 1, "local"), "clf"),
        (("some-job", 0, "local"), "initial_instance_count"),
        (("some-job", 1, "m5"), "instance_type"),
        (("some-job", 1, "local", "bad_name"), "endpoint_name"),
        (("no-such-job", 1, "local"), "no local training job"),
    ],
)
def test_deploy_argument_errors(dwc, args, match):
    with pytest.raises(ConfigurationError, match=match):
        dwc.deploy(*args)


def test_predict_errors(dwc):
    with pytest.raises(ConfigurationError, match="body"):
        dwc.predict("some-endpoint", 12)
    with pytest.raises(EndpointError, match="no-such-endpoint"):
        dwc.predict("no-such-endpoint", "1")


def test_deploy_to_kyma_locally_and_invoke(dwc, trained, tmp_path):
    from fedsage.kyma.manage import delete_deployment
    from fedsage.kyma.records import list_records

    handle = _train(dwc, trained[2])
    url = dwc.deploy_to_kyma(handle, profile_name=None, initial_instance_count=2)
    (record,) = [r for r in list_records() if r.url == url]
    try:
        assert url.startswith("http://127.0.0.1:")
        assert not dwc._backend.store.list(f"deploy/{handle.job_name}/data/")
        response = dwc.invoke_kyma_endpoint(url, "text/csv", payload="2.0")
        assert response.status_code == 200
        assert response.json() == pytest.approx([5.0])
        payload = tmp_path / "rows.json"
        payload.write_text("[[1.0], [3.0]]")
        response = dwc.invoke_kyma_endpoint(
            url + "/invocations", "application/json", payload_path=str(payload), accept="text/csv"
        )
        assert [float(v) for v in response.text.split()] == pytest.approx([3.0, 7.0])
        bad = dwc.invoke_kyma_endpoint(url, "text/csv", payload="x,y")
        assert bad.status_code == 400
    finally:
        delete_deployment(record.name)
    assert all(r.url != url for r in list_records())


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("some-job", None, 0), "initial_instance_count"),
        ((None, None, 1), "clf"),
        (("some-job", None, 1, "bad_name"), "endpoint_name"),
        (("no-such-job", None, 1), "no local training job"),
    ],
)
def test_deploy_to_kyma_argument_errors(dwc, args, match):
    with pytest.raises(ConfigurationError, match=match):
        dwc.deploy_to_kyma(*args)


def test_deploy_to_kyma_needs_a_profile_in_aws_mode(monkeypatch):
    monkeypatch.setenv("FEDSAGE_MODE", "aws")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # never used: the check comes first
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(ConfigurationError, match="profile_name"):
        DwcSagemaker(bucket_name="some-bucket").deploy_to_kyma("some-job", None)


def test_deploy_keeps_the_runtime_that_trained_the_model(dwc, trained):
    handle = _train(dwc, trained[2])
    with pytest.raises(ConfigurationError, match="runtime that trained it"):
        dwc.deploy(handle, 1, "local", framework_version="1.2-1")
    with pytest.raises(ConfigurationError, match=r"0\.23-1"):
        dwc.deploy(handle, 1, "local", framework_version="9.9")
