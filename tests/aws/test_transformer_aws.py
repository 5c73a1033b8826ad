"""The SDK's own transformer in aws mode, against moto: CreateModel and CreateTransformJob
go through fedsage's session (its region, role and bucket).

moto records the model and the transform job and describes them; it runs no container,
reads no input and writes no ``.out`` file, so what a job *does* is covered by the local
tests (tests/scoring/test_transformer_local.py), not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from sagemaker.transformer import Transformer

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError

from .conftest import DEFAULT_BUCKET, IMAGE_0231, REGION, moto_training_job

FRAME = pd.DataFrame({"y": [3.0, 5.0, 7.0], "x": [1.0, 2.0, 3.0]})


def _capture(dwc: DwcSagemaker, operation: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    dwc._backend.sdk.sagemaker_client.meta.events.register(  # type: ignore[attr-defined]
        f"provide-client-params.sagemaker.{operation}",
        lambda params, **kwargs: sent.append(dict(params)),
    )
    return sent


def _train(dwc: DwcSagemaker, script: Path) -> Any:
    return dwc.train_sklearn_model(
        FRAME, train_script=str(script), instance_type="ml.m5.large", wait=True, logs="None"
    )


def test_sdk_transformer_creates_the_transform_job(sm: Any, train_script: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    clf = _train(dwc, train_script)
    boto3.client("s3").put_object(Bucket=DEFAULT_BUCKET, Key="batch/in/a.csv", Body=b"1\n2\n")
    models = _capture(dwc, "CreateModel")
    jobs = _capture(dwc, "CreateTransformJob")
    transformer = clf.transformer(
        instance_count=2,
        instance_type="ml.m5.large",
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        max_payload=6,
        max_concurrent_transforms=4,
        env={"EXTRA": "1"},
    )
    assert type(transformer) is Transformer
    transformer.transform(
        f"s3://{DEFAULT_BUCKET}/batch/in/",
        content_type="text/csv",
        split_type="Line",
        input_filter="$[1:]",
        join_source="Input",
        output_filter="$[0,-1]",
        wait=False,
    )
    (model,) = models
    assert model["PrimaryContainer"]["Image"] == IMAGE_0231
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith(f"s3://{DEFAULT_BUCKET}/")
    (request,) = jobs
    name = request["TransformJobName"]
    assert name.startswith("sagemaker-scikit-learn-")  # base_transform_job_name = base job name
    assert request["ModelName"] == model["ModelName"]
    # The SDK names the model from the base job name with a new timestamp, as local mode.
    assert model["ModelName"].startswith("sagemaker-scikit-learn-")
    assert model["ModelName"] != clf.latest_training_job.name
    assert request["BatchStrategy"] == "MultiRecord"
    assert request["MaxPayloadInMB"] == 6
    assert request["MaxConcurrentTransforms"] == 4
    assert request["Environment"]["EXTRA"] == "1"
    # The job's Environment is the transformer's env; the script's variables are the model's.
    assert request["Environment"] == {"EXTRA": "1"}
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert request["TransformInput"] == {
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{DEFAULT_BUCKET}/batch/in/"}
        },
        "ContentType": "text/csv",
        "SplitType": "Line",
    }
    # The SDK's default output path: the session's bucket (fedsage's), then the job name;
    # fedsage's prefix is not the SDK session's default_bucket_prefix, so it is not there.
    assert request["TransformOutput"]["S3OutputPath"] == f"s3://{DEFAULT_BUCKET}/{name}"
    assert request["TransformOutput"]["AssembleWith"] == "Line"
    assert request["TransformOutput"]["Accept"] == "text/csv"
    assert request["TransformResources"] == {"InstanceCount": 2, "InstanceType": "ml.m5.large"}
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input",
    }  # fmt: skip
    described = sm.describe_transform_job(TransformJobName=name)
    assert described["TransformJobName"] == name
    assert described["ModelName"] == model["ModelName"]
    assert f":{REGION}:" in described["TransformJobArn"]
    # moto reports the job Completed at once, so the SDK's wait returns.
    assert described["TransformJobStatus"] == "Completed"
    transformer.wait(logs=False)


def test_backend_transformer_is_the_sdk_one_from_the_job(train_script: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    clf = _train(dwc, train_script)
    job = clf.latest_training_job.name
    # SageMaker always describes OutputDataConfig.KmsKeyId (maybe ""), which the SDK's
    # attach reads; moto leaves it out.
    moto_training_job(job).output_data_config.setdefault("KmsKeyId", "")
    transformer = dwc._backend.transformer(job, instance_count=1, instance_type="ml.m5.large")
    assert type(transformer) is Transformer
    assert transformer.instance_type == "ml.m5.large"


def test_backend_transformer_refuses_an_unknown_job() -> None:
    dwc = DwcSagemaker(mode="aws")
    with pytest.raises(ConfigurationError):
        dwc._backend.transformer("no-such-job", instance_count=1, instance_type="ml.m5.large")
