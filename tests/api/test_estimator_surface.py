"""Local mode: the handle answers like the SDK's SKLearn estimator, and handle.deploy()
gives a predictor that is called like the SDK's SKLearnPredictor (real server)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest
from sagemaker.deserializers import JSONDeserializer
from sagemaker.serializers import CSVSerializer

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError, EndpointError, TrainingError
from fedsage.estimator import TrainingJobHandle
from fedsage.predictor import Predictor

from .test_deploy_predict import SCRIPT

FRAME = pd.DataFrame({"y": [3.0, 5.0, 7.0, 9.0], "x": [1.0, 2.0, 3.0, 4.0]})  # y = 2x + 1


@pytest.fixture()
def dwc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "broken.py").write_text("raise RuntimeError('no model today')\n")
    return DwcSagemaker(prefix="surface")


def _train(dwc, script="train.py", **kwargs):
    return dwc.train_sklearn_model(
        FRAME, train_script=script, framework_version="host", logs="None", **kwargs
    )


def test_handle_deploys_a_predictor_like_the_sdks(dwc):
    handle = _train(dwc, wait=True)
    assert isinstance(handle, TrainingJobHandle)
    assert handle.latest_training_job.describe()["TrainingJobStatus"] == "Completed"
    assert handle.model_data.endswith(f"/{handle.job_name}/output/model.tar.gz")
    predictor = handle.deploy(1, "local", endpoint_name="surface-ep")
    try:
        assert isinstance(predictor, Predictor) and predictor.endpoint_name == "surface-ep"
        assert predictor.content_type == predictor.accept == "application/x-npy"
        # numpy, pandas and lists, through the default .npy serializer and back
        assert predictor.predict(np.array([[4.0], [5.0]])).tolist() == pytest.approx([9.0, 11.0])
        assert predictor.predict(pd.DataFrame({"x": [0.0]})).tolist() == pytest.approx([1.0])
        assert predictor.predict([[10.0]]).tolist() == pytest.approx([21.0])
        # the SDK's own serializer objects work as they do with an SDK predictor
        sdk = Predictor(
            "surface-ep", dwc._backend, serializer=CSVSerializer(), deserializer=JSONDeserializer()
        )
        assert sdk.predict([[1.0], [2.0]]) == pytest.approx([3.0, 5.0])
        assert "surface-ep" in predictor._repr_html_()
    finally:
        predictor.delete_endpoint()
    assert [e["EndpointName"] for e in dwc._backend.list_endpoints()] == []
    with pytest.raises(EndpointError, match="no endpoint named 'surface-ep'"):
        predictor.predict([[1.0]])


def test_deploy_arguments_are_checked_before_anything_starts(dwc):
    handle = _train(dwc, wait=True)
    with pytest.raises(ConfigurationError, match="initial_instance_count"):
        handle.deploy(0, "local")
    with pytest.raises(ConfigurationError, match="accelerator_type"):
        handle.deploy(1, "local", accelerator_type="ml.eia2.medium")
    with pytest.raises(ConfigurationError, match="endpoint_name"):
        handle.deploy(1, "local", endpoint_name="not_valid")
    assert dwc._backend.list_endpoints() == []


def test_attach_in_a_new_session(dwc):
    handle = _train(dwc, wait=True)
    again = DwcSagemaker(prefix="other").attach(handle.job_name)
    assert isinstance(again, TrainingJobHandle)
    assert again.job_name == handle.job_name
    assert again.model_data == handle.model_data
    assert again.hyperparameters() == handle.hyperparameters()
    assert again.framework_version == "host"
    assert again.entry_point == "train.py"
    with pytest.raises(ConfigurationError, match="no local training job named 'gone'"):
        dwc.attach("gone")


def test_a_failed_job_is_also_a_value_error(dwc):
    handle = _train(dwc, script="broken.py")
    with pytest.raises(ValueError, match="no model today") as caught:
        handle.latest_training_job.wait(logs="None")
    assert isinstance(caught.value, TrainingError)
    assert caught.value.status == "Failed"


def test_handle_summary_in_notebooks(dwc):
    handle = _train(dwc, wait=True)
    page = handle._repr_html_()
    assert html.escape(handle.job_name) in page and "Completed" in page and "host" in page
