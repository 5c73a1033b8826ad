"""train_sagemaker_model in aws mode, against moto: the SDK's generic Estimator on the
algorithm's image, fitted, and accepted by deploy and deploy_to_kyma."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from sagemaker.estimator import Estimator

from fedsage import DwcSagemaker
from fedsage.builtin import xgboost as builtin_xgb

from .conftest import DEFAULT_BUCKET, REGION, moto_training_job

FRAME = pd.DataFrame({"label": [0, 1, 0, 1], "a": [1.0, 2.0, 3.0, 4.0]})


def _capture(dwc: DwcSagemaker) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    dwc._backend.sdk.sagemaker_client.meta.events.register(  # type: ignore[attr-defined]
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **kwargs: sent.append(dict(params)),
    )
    return sent


def test_xgboost_on_its_image_with_fedml_aws_arguments(sm: Any) -> None:
    dwc = DwcSagemaker(mode="aws")
    sent = _capture(dwc)
    buffer = io.BytesIO(b"\x0a\x0b recordio bytes")
    clf = dwc.train_sagemaker_model(
        FRAME,
        "xgboost",
        "1.7-1",
        instance_count=2,
        instance_type="ml.m5.large",
        hyperparameters={"num_round": 10, "eta": 0.3},
        test_data=buffer,
        s3distributionTypeTrain="ShardedByS3Key",
    )
    assert type(clf) is Estimator
    (request,) = sent
    image = request["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith("/sagemaker-xgboost:1.7-1") and REGION in image
    assert request["HyperParameters"] == {"num_round": "10", "eta": "0.3"}  # plain strings
    assert request["ResourceConfig"]["InstanceCount"] == 2
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    train = channels["train"]
    assert train["ContentType"] == "csv"
    assert train["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert channels["test"]["ContentType"] == "application/x-recordio-protobuf"
    job = clf.latest_training_job.name
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=DEFAULT_BUCKET, Key=f"model-data/{job}/data/train/train.csv")
    assert body["Body"].read() == b"0,1.0\n1,2.0\n0,3.0\n1,4.0\n"  # header-less CSV
    # deploy takes the SDK's estimator and serves it from the algorithm's own image.
    name = dwc.deploy(clf, 1, "ml.m5.large", endpoint_name="xgb-endpoint")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    )
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == image


def test_other_builtin_algorithms_run_in_aws_mode(sm: Any) -> None:
    dwc = DwcSagemaker(mode="aws")
    sent = _capture(dwc)
    clf = dwc.train_sagemaker_model(
        FRAME,
        "linear-learner",
        "1",
        instance_type="ml.m5.large",
        hyperparameters={"predictor_type": "binary_classifier"},
        wait=False,
    )
    assert "/linear-learner:1" in sent[0]["AlgorithmSpecification"]["TrainingImage"]
    assert clf.latest_training_job.name.startswith("linear-learner-")


def test_an_xgboost_model_is_served_by_fedsages_handlers_on_kyma(
    sm: Any, tmp_path: Path
) -> None:
    dwc = DwcSagemaker(mode="aws")
    clf = dwc.train_sagemaker_model(
        FRAME, "xgboost", "1.7-1", instance_type="ml.m5.large", hyperparameters={"num_round": 2}
    )
    job = clf.latest_training_job.name
    model_key = f"model-data/{job}/output/model.tar.gz"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"binf-model-bytes"
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    boto3.client("s3").put_object(Bucket=DEFAULT_BUCKET, Key=model_key, Body=archive.getvalue())
    moto_training_job(job).model_artifacts = {
        "S3ModelArtifacts": f"s3://{DEFAULT_BUCKET}/{model_key}"
    }
    inputs = dwc._backend.kyma_inputs(job, tmp_path)
    assert (inputs.framework, inputs.framework_version) == ("xgboost", "1.7-1")
    assert inputs.program == builtin_xgb.SERVING_PROGRAM
    assert inputs.env["FEDSAGE_DEFAULT_CONTENT_TYPE"] == "text/libsvm"
    assert inputs.code_tar is not None
    with tarfile.open(inputs.code_tar) as tar:
        names = tar.getnames()
    assert builtin_xgb.SERVING_PROGRAM in names and "fedsage_xgboost/serve.py" in names


def test_a_closed_algorithm_is_refused_by_kyma_with_the_way_out(sm: Any, tmp_path: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    clf = dwc.train_sagemaker_model(
        FRAME, "linear-learner", "1", instance_type="ml.m5.large", hyperparameters={}
    )
    with pytest.raises(ValueError, match="serve this one as a SageMaker endpoint with deploy"):
        dwc._backend.kyma_inputs(clf.latest_training_job.name, tmp_path)
