"""Endpoints, predict, cleanup, role/region/credential resolution, against moto.

moto creates models, endpoint configs and endpoints (InService at once) but runs no
container; its sagemaker-runtime InvokeEndpoint returns canned results (configurable
through /moto-api/static/sagemaker/endpoint-results) and never a ModelError.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.backends.aws import AwsBackend
from fedsage.errors import ConfigurationError, EndpointError, InvocationError, MissingExtraError

from .conftest import ACCOUNT, DEFAULT_BUCKET, IMAGE_0231, REGION, ROLE, moto_endpoint, moto_post

FRAME = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})


def run_notebook(dwc: DwcSagemaker, script: Path, endpoint_name: str | None = None) -> tuple[str, Any]:
    """The fedml-aws notebook path: train -> deploy -> predict, identical in both modes."""
    clf = dwc.train_sklearn_model(
        train_data=FRAME,
        train_script=str(script),
        instance_type="ml.m5.large",
        wait=True,
        logs="None",
    )
    name = dwc.deploy(
        clf, initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=endpoint_name
    )
    return name, dwc.predict(name, "1.0\n2.0\n", content_type="text/csv", accept="application/json")


def test_notebook_path_in_local_mode(
    train_script: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The same notebook as test_notebook_path_in_aws_mode, only FEDSAGE_MODE differs: the
    # script really trains (on the default 0.23-1 runtime) and a local endpoint answers.
    monkeypatch.setenv("FEDSAGE_MODE", "local")
    monkeypatch.chdir(tmp_path)
    dwc = DwcSagemaker()
    name, answer = run_notebook(dwc, train_script)
    try:
        assert isinstance(answer, str)
        assert json.loads(answer) == pytest.approx([0.0, 1.0], abs=1e-9)
        assert name.startswith("sagemaker-scikit-learn-")
        (job,) = dwc._backend.list_training_jobs()
        assert job["AlgorithmSpecification"]["TrainingImage"].endswith(":0.23-1-cpu-py3")
        assert job["Fedsage"]["Runtime"]["packages"]["scikit-learn"] == "0.23.2"
    finally:
        dwc.delete_endpoint(name)


def canned_answer(moto_url: str, body: str, content_type: str = "application/json") -> None:
    moto_post(
        moto_url,
        "/moto-api/static/sagemaker/endpoint-results",
        {
            "account_id": ACCOUNT,
            "region": REGION,
            "results": [
                {
                    "Body": body,
                    "ContentType": content_type,
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
            ],
        },
    )


def test_notebook_path_in_aws_mode(
    aws_env: str, sm: Any, s3: Any, train_script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only FEDSAGE_MODE differs from the local run of the same notebook (see run_notebook()).
    monkeypatch.setenv("FEDSAGE_MODE", "aws")
    canned_answer(aws_env, "[0.0, 1.0]")
    dwc = DwcSagemaker()
    name, answer = run_notebook(dwc, train_script)
    assert answer == "[0.0, 1.0]"  # text, as fedml-aws returned it
    assert name.startswith("sagemaker-scikit-learn-")
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    model = sm.describe_model(ModelName=variant["ModelName"])
    job = sm.list_training_jobs()["TrainingJobSummaries"][0]["TrainingJobName"]
    container = model["PrimaryContainer"]
    assert container["Image"] == IMAGE_0231  # served by the image that trained it
    assert (
        container["ModelDataUrl"] == f"s3://{DEFAULT_BUCKET}/model-data/{job}/output/model.tar.gz"
    )
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == (
        f"s3://{DEFAULT_BUCKET}/model-data/{job}/source/sourcedir.tar.gz"
    )
    assert model["ExecutionRoleArn"] == ROLE
    # cleanup_resources=True removed the channel data, nothing else.
    remaining = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"])
    assert remaining == [f"model-data/{job}/source/sourcedir.tar.gz"]
    assert [e["EndpointName"] for e in dwc._backend.list_endpoints()] == [name]


def test_deploy_names_and_conflicts(sm: Any, train_script: Path, aws_env: str) -> None:
    dwc = DwcSagemaker(mode="aws")
    name, _ = run_notebook(dwc, train_script, endpoint_name="iris-endpoint")
    assert name == "iris-endpoint"
    job = sm.list_training_jobs()["TrainingJobSummaries"][0]["TrainingJobName"]
    with pytest.raises(ConfigurationError, match="already exists"):
        dwc.deploy(job, 1, "ml.m5.large", endpoint_name="iris-endpoint")
    with pytest.raises(ConfigurationError, match="local mode"):
        dwc.deploy(job, 1, "local")


def test_deploy_refuses_unfinished_job_and_reports_failed_endpoint(
    sm: Any, train_script: Path
) -> None:
    from .conftest import moto_training_job

    dwc = DwcSagemaker(mode="aws")
    clf = dwc.train_sklearn_model(
        FRAME, train_script=str(train_script), instance_type="ml.m5.large"
    )
    moto_training_job(clf.latest_training_job.name).training_job_status = "InProgress"
    with pytest.raises(ConfigurationError, match="InProgress, not Completed"):
        dwc.deploy(clf, 1, "ml.m5.large")
    moto_training_job(clf.latest_training_job.name).training_job_status = "Completed"
    backend = dwc._backend
    assert isinstance(backend, AwsBackend)
    name = backend.deploy(
        clf.latest_training_job.name,
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name="will-fail",
    )
    # moto endpoints are InService at once: mark one Failed and wait on it again.
    moto_endpoint(name).endpoint_status = "Failed"
    moto_endpoint(name).failure_reason = "ping failed"
    with pytest.raises(EndpointError, match="will-fail is Failed: ping failed"):
        backend._wait_for_endpoint(name)


def test_delete_endpoint_removes_endpoint_config_and_model(
    sm: Any, train_script: Path, aws_env: str
) -> None:
    dwc = DwcSagemaker(mode="aws")
    name, _ = run_notebook(dwc, train_script)
    config_name = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    model_name = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][
        0
    ]["ModelName"]
    dwc.delete_endpoint(name)
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == []
    assert model_name
    with pytest.raises(EndpointError, match="no endpoint named"):
        dwc.delete_endpoint(name)


def test_predict_returns_body_and_content_type(aws_env: str) -> None:
    canned_answer(aws_env, "1.0\n", "text/csv; charset=utf-8")
    backend = DwcSagemaker(mode="aws")._backend
    assert backend.invoke_endpoint("any", b"1,2", "text/csv", "text/csv") == (
        b"1.0\n",
        "text/csv; charset=utf-8",
    )


def test_model_error_becomes_invocation_error() -> None:
    # moto never answers ModelError; botocore's Stubber produces the real error shape.
    from botocore.stub import Stubber

    backend = DwcSagemaker(mode="aws")._backend
    assert isinstance(backend, AwsBackend)
    runtime = backend._client("sagemaker-runtime")
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            service_message='Received server error (500) from primary with message "boom"',
            modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "boom"},
        )
        with pytest.raises(InvocationError) as caught:
            backend.invoke_endpoint("iris", b"1,2", "text/csv", "")
    assert (caught.value.endpoint_name, caught.value.status_code, caught.value.body) == (
        "iris",
        500,
        "boom",
    )


# -- configuration -------------------------------------------------------------------


def test_role_argument_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AwsBackend(None, "p").role == ROLE
    other = f"arn:aws:iam::{ACCOUNT}:role/Other"
    assert AwsBackend(None, "p", role=other).role == other
    with pytest.raises(ConfigurationError, match="not an IAM role"):
        _ = AwsBackend(None, "p", role=f"arn:aws:iam::{ACCOUNT}:user/bob").role


@pytest.mark.usefixtures("sts_to_moto")
def test_missing_role_names_every_source(
    monkeypatch: pytest.MonkeyPatch, train_script: Path, sm: Any
) -> None:
    monkeypatch.delenv("FEDSAGE_SAGEMAKER_ROLE")
    dwc = DwcSagemaker(mode="aws")
    # moto's caller identity is an IAM user, not a role: get_execution_role refuses it.
    with pytest.raises(ConfigurationError) as caught:
        dwc.train_sklearn_model(FRAME, train_script=str(train_script), instance_type="ml.m5.large")
    message = str(caught.value)
    assert "role=" in message and "FEDSAGE_SAGEMAKER_ROLE" in message and "notebook" in message
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


@pytest.mark.usefixtures("sts_to_moto")
def test_execution_role_of_an_assumed_role(monkeypatch: pytest.MonkeyPatch, boto: Any) -> None:
    monkeypatch.delenv("FEDSAGE_SAGEMAKER_ROLE")
    iam = boto.client("iam")
    arn = iam.create_role(RoleName="NotebookRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    creds = boto.client("sts").assume_role(RoleArn=arn, RoleSessionName="nb")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    assert AwsBackend(None, "p").role == arn


def test_missing_region_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="AWS_DEFAULT_REGION"):
        DwcSagemaker(mode="aws")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError, match="credentials") as caught:
        DwcSagemaker(mode="aws")
    assert "testing-secret-value" not in str(caught.value)


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now fails
    with pytest.raises(MissingExtraError, match=r"fedsage\[aws\]"):
        DwcSagemaker(mode="aws")


def test_nothing_secret_in_reprs() -> None:
    dwc = DwcSagemaker(mode="aws")
    assert "testing-secret-value" not in repr(dwc) + repr(dwc._backend) + repr(dwc._backend.store)


def test_deploy_a_model_trained_on_another_image(sm: Any, s3: Any, aws_env: str) -> None:
    # A script-mode job trained outside fedsage on a custom image: framework_version names
    # the scikit-learn image to serve it on; without it the error says what to pass.
    bucket = "foreign-models"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket, Key="job/output/model.tar.gz", Body=b"model")
    s3.put_object(Bucket=bucket, Key="job/source/sourcedir.tar.gz", Body=b"code")
    sm.create_training_job(
        TrainingJobName="foreign-job",
        AlgorithmSpecification={
            "TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/my-sklearn:latest",
            "TrainingInputMode": "File",
        },
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{bucket}/job/source/sourcedir.tar.gz"',
        },
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    dwc = DwcSagemaker(mode="aws")
    with pytest.raises(ConfigurationError, match="framework_version="):
        dwc.deploy("foreign-job", 1, "ml.m5.large", cleanup_resources=False)
    name = dwc.deploy(
        "foreign-job", 1, "ml.m5.large", cleanup_resources=False, framework_version="0.23-1"
    )
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    )
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE_0231
    with pytest.raises(ConfigurationError, match="framework_version"):
        dwc.deploy("foreign-job", 1, "ml.m5.large", framework_version="0.99")
