"""aws mode hands out the SageMaker SDK's own objects, so SDK code around them works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sagemaker.sklearn import SKLearn, SKLearnPredictor
from sagemaker.transformer import Transformer
from sagemaker.tuner import HyperparameterTuner, IntegerParameter

from fedsage import DwcSagemaker
from fedsage.errors import InvocationError

from .conftest import moto_training_job
from .test_endpoints_and_config import FRAME


def _fitted(script: Path) -> tuple[DwcSagemaker, Any]:
    dwc = DwcSagemaker(mode="aws")
    clf = dwc.train_sklearn_model(
        FRAME, train_script=str(script), instance_type="ml.m5.large", wait=True, logs="None"
    )
    return dwc, clf


def test_the_fitted_estimator_is_the_sdks_own(sm: Any, train_script: Path) -> None:
    dwc, clf = _fitted(train_script)
    job = clf.latest_training_job.name
    assert type(clf) is SKLearn
    assert clf.framework_version == "0.23-1"
    assert clf.model_data.endswith(f"/{job}/output/model.tar.gz")
    transformer = clf.transformer(1, "ml.m5.large")
    assert isinstance(transformer, Transformer) and transformer.instance_count == 1
    tuner = HyperparameterTuner(
        clf,
        objective_metric_name="accuracy",
        hyperparameter_ranges={"n-estimators": IntegerParameter(10, 50)},
        metric_definitions=[{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}],
        max_jobs=2,
    )
    assert tuner.estimator is clf
    # SDK deploy works on it, and fedsage's deploy takes it as it takes a job name.
    predictor = clf.deploy(1, "ml.m5.large", endpoint_name="sdk-deployed")
    assert isinstance(predictor, SKLearnPredictor)
    assert sm.describe_endpoint(EndpointName="sdk-deployed")["EndpointStatus"] == "InService"
    name = dwc.deploy(clf, 1, "ml.m5.large", endpoint_name="fedsage-deployed")
    assert name == "fedsage-deployed"


def test_attach_gives_the_estimator_back_in_a_new_session(sm: Any, train_script: Path) -> None:
    _, clf = _fitted(train_script)
    job = clf.latest_training_job.name
    # SageMaker always describes OutputDataConfig.KmsKeyId (maybe ""), which attach reads;
    # moto leaves it out.
    moto_training_job(job).output_data_config.setdefault("KmsKeyId", "")
    again = DwcSagemaker(mode="aws").attach(job)
    assert type(again) is SKLearn
    assert again.latest_training_job.name == job
    assert again.model_data == clf.model_data
    with pytest.raises(ValueError, match="no training job named 'missing-job'"):
        DwcSagemaker(mode="aws").attach("missing-job")


def test_a_model_error_is_also_a_botocore_client_error() -> None:
    from botocore.stub import Stubber

    backend = DwcSagemaker(mode="aws")._backend
    runtime = backend._client("sagemaker-runtime")  # type: ignore[attr-defined]
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            service_message='Received client error (415) from primary with message "no"',
            modeled_fields={"OriginalStatusCode": 415, "OriginalMessage": "no"},
        )
        with pytest.raises(ClientError) as caught:
            backend.invoke_endpoint("iris", b"1,2", "text/csv", "")
    error = caught.value
    assert isinstance(error, InvocationError)
    assert error.response["Error"]["Code"] == "ModelError"
    assert (error.status_code, error.body) == (415, "no")
