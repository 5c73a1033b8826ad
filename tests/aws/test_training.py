"""Training in aws mode against moto: uploads, keys, the CreateTrainingJob request, waits.

moto records a training job and reports it ``Completed`` at once; it never runs the
script, writes no model.tar.gz and no CloudWatch log.  Tests that need a failed job or
an output archive put that state into moto themselves (see each test).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from sagemaker.exceptions import UnexpectedStatusException
from sagemaker.sklearn import SKLearn

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError, FedsageError, TrainingError
from fedsage.training.contract import encode_hyperparameters, reserved_hyperparameters

from .conftest import DEFAULT_BUCKET, IMAGE_0231, REGION, ROLE, moto_training_job

FRAME = pd.DataFrame({"sepal": [5.1, 4.9], "petal": [1.4, 1.3], "label": [0, 1]})
HYPERPARAMETERS = {"n_estimators": 10, "name": "rf", "flag": True, "layers": [1, 2], "k": 0.5}


def keys(s3: Any, bucket: str = DEFAULT_BUCKET) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def train(dwc: DwcSagemaker, script: Path, **kwargs: Any) -> Any:
    """``train_sklearn_model`` with test defaults; aws mode returns the SDK's estimator."""
    args: dict[str, Any] = {
        "train_data": FRAME,
        "test_data": FRAME.head(1),
        "content_type": "text/csv",
        "train_script": str(script),
        "instance_type": "ml.m5.large",
        "hyperparameters": HYPERPARAMETERS,
    }
    args.update(kwargs)
    return dwc.train_sklearn_model(**args)


def test_default_bucket_is_one_per_account_and_region(s3: Any, train_script: Path) -> None:
    first = DwcSagemaker(mode="aws")
    assert first.bucket_name == DEFAULT_BUCKET
    train(first, train_script)
    train(DwcSagemaker(mode="aws"), train_script)
    train(first, train_script)
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert buckets == [DEFAULT_BUCKET]
    assert s3.get_bucket_location(Bucket=DEFAULT_BUCKET)["LocationConstraint"] == REGION


def test_named_bucket_is_created_in_the_region(s3: Any, train_script: Path) -> None:
    dwc = DwcSagemaker(bucket_name="team-models", prefix="iris", mode="aws")
    handle = train(dwc, train_script)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["team-models"]
    assert s3.get_bucket_location(Bucket="team-models")["LocationConstraint"] == REGION
    assert handle.output_path == "s3://team-models/iris"


def test_uploads_and_key_layout(s3: Any, train_script: Path, tmp_path: Path) -> None:
    handle = train(DwcSagemaker(mode="aws"), train_script)
    job = handle.latest_training_job.name
    # The layout local mode uses: <prefix>/<job>/{data/<channel>,source}/...
    assert keys(s3) == [
        f"model-data/{job}/data/test/test.csv",
        f"model-data/{job}/data/train/train.csv",
        f"model-data/{job}/source/sourcedir.tar.gz",
    ]
    body = s3.get_object(Bucket=DEFAULT_BUCKET, Key=f"model-data/{job}/data/train/train.csv")
    assert body["Body"].read().decode() == "5.1,1.4,0\n4.9,1.3,1\n"  # no header, no index
    archive = s3.get_object(Bucket=DEFAULT_BUCKET, Key=f"model-data/{job}/source/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read())) as tar:
        assert tar.getnames() == ["train.py"]
        member = tar.extractfile("train.py")
        assert member is not None and member.read() == train_script.read_bytes()


def test_source_dir_is_packed_whole(s3: Any, tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    (code / "train.py").write_text("print(1)\n")
    (code / "lib" / "helpers.py").write_text("X = 1\n")
    (code / "requirements.txt").write_text("numpy\n")
    handle = train(DwcSagemaker(mode="aws"), Path("train.py"), source_dir=str(code))
    key = f"model-data/{handle.latest_training_job.name}/source/sourcedir.tar.gz"
    with tarfile.open(
        fileobj=io.BytesIO(s3.get_object(Bucket=DEFAULT_BUCKET, Key=key)["Body"].read())
    ) as tar:
        names = sorted(n for n in tar.getnames() if tar.getmember(n).isfile())
    assert names == ["lib/helpers.py", "requirements.txt", "train.py"]
    assert handle.hyperparameters()["sagemaker_program"] == '"train.py"'


def test_create_training_job_request(sm: Any, train_script: Path) -> None:
    handle = train(DwcSagemaker(mode="aws"), train_script)
    job = handle.latest_training_job.name
    assert job.startswith("sagemaker-scikit-learn-")
    described = sm.describe_training_job(TrainingJobName=job)
    submit = f"s3://{DEFAULT_BUCKET}/model-data/{job}/source/sourcedir.tar.gz"
    # Exactly what local mode writes to hyperparameters.json (user + reserved entries).
    expected = {
        **encode_hyperparameters(HYPERPARAMETERS),
        **reserved_hyperparameters(
            program="train.py", submit_directory=submit, job_name=job, region=REGION
        ),
    }
    assert described["HyperParameters"] == expected
    assert described["HyperParameters"]["name"] == '"rf"'
    assert described["HyperParameters"]["layers"] == "[1, 2]"
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE_0231
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["RoleArn"] == ROLE
    assert described["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert described["ResourceConfig"]["InstanceCount"] == 1
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{DEFAULT_BUCKET}/model-data"
    channels = {c["ChannelName"]: c for c in described["InputDataConfig"]}
    assert sorted(channels) == ["test", "train"]
    for name, channel in channels.items():
        assert channel["ContentType"] == "text/csv"
        source = channel["DataSource"]["S3DataSource"]
        assert source["S3Uri"] == f"s3://{DEFAULT_BUCKET}/model-data/{job}/data/{name}/"
        assert source["S3DataType"] == "S3Prefix"
        assert source["S3DataDistributionType"] == "FullyReplicated"
    # It is the SDK's own estimator, fitted, as fedml-aws returns it.
    assert type(handle) is SKLearn
    assert handle.model_data == f"s3://{DEFAULT_BUCKET}/model-data/{job}/output/model.tar.gz"
    assert handle.latest_training_job.name == job


def test_other_inputs(s3: Any, sm: Any, train_script: Path, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="raw-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="raw-data", Key="iris/part-0.csv", Body=b"1,2\n")
    local = tmp_path / "test.json"
    local.write_text('{"a": 1}\n')

    class Source:  # a streaming source as fedsage.data provides (export_channel)
        def export_channel(self, path: Path, file_format: str = "csv") -> int:
            path.write_text("7,8\n")
            return 1

    dwc = DwcSagemaker(mode="aws")
    handle = train(
        dwc,
        train_script,
        train_data="s3://raw-data/iris/",
        test_data=f"file://{local}",
        content_type=None,
    )
    described = sm.describe_training_job(TrainingJobName=handle.latest_training_job.name)
    channels = {c["ChannelName"]: c for c in described["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://raw-data/iris/"
    assert "ContentType" not in channels["train"]
    job = handle.latest_training_job.name
    assert f"model-data/{job}/data/test/test.json" in keys(s3)
    handle = train(dwc, train_script, train_data=Source(), test_data=None)
    body = s3.get_object(
        Bucket=DEFAULT_BUCKET, Key=f"model-data/{handle.latest_training_job.name}/data/train/train.csv"
    )
    assert body["Body"].read() == b"7,8\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"framework_version": "host"}, "local mode"),
        ({"instance_type": "local"}, "ml.m5.large"),
        ({"framework_version": "1.9-0"}, "0.23-1"),  # fedsage knows it, SDK v2 has no image
    ],
)
def test_refused_requests_leave_nothing(
    s3: Any, sm: Any, train_script: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        train(DwcSagemaker(mode="aws"), train_script, **kwargs)
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert buckets == [] or keys(s3) == []


def test_wait_list_stop_and_logs(sm: Any, train_script: Path, capsys: Any) -> None:
    dwc = DwcSagemaker(mode="aws")
    handle = train(dwc, train_script)
    job = handle.latest_training_job.name
    backend = dwc._backend
    assert backend.wait_training_job(job, logs="None")["TrainingJobStatus"] == "Completed"
    # logs='All' goes through the SDK's logs_for_job, which prints the status line.
    assert backend.wait_training_job(job, logs="All")["TrainingJobStatus"] == "Completed"
    assert "Starting - Preparing the instances for training" in capsys.readouterr().out
    backend.stop_training_job(job)  # already Completed: a no-op, as in local mode
    assert sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "Completed"
    names = [j["TrainingJobName"] for j in dwc._backend.list_training_jobs()]
    assert names == [job]
    assert dwc.describe_training_job(job)["TrainingJobName"] == job


def test_training_log_reads_cloudwatch(boto: Any, train_script: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    job = train(dwc, train_script).latest_training_job.name
    assert dwc._backend.training_log(job) == []  # no log group yet
    logs = boto.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=f"{job}/algo-1-1700000000")
    now = int(time.time() * 1000)  # moto drops events older than its retention window
    events = [{"timestamp": now + i, "message": f"line {i}"} for i in range(3)]
    logs.put_log_events(
        logGroupName=group, logStreamName=f"{job}/algo-1-1700000000", logEvents=events
    )
    assert dwc._backend.training_log(job) == ["line 0", "line 1", "line 2"]


def test_failed_job_raises_training_error(train_script: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    handle = train(dwc, train_script)
    # moto never fails a job by itself: set its in-process record to Failed.
    record = moto_training_job(handle.latest_training_job.name)
    record.training_job_status = "Failed"
    record.failure_reason = 'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""'
    job = handle.latest_training_job.name
    with pytest.raises(TrainingError) as caught:
        dwc._backend.wait_training_job(job, logs="None")
    assert caught.value.job_name == job
    assert caught.value.status == "Failed"
    assert caught.value.reason.startswith("AlgorithmError: ExecuteUserScriptError")
    # A notebook catching the SDK's exception (or ValueError) catches fedsage's error too.
    assert isinstance(caught.value, UnexpectedStatusException)
    assert isinstance(caught.value, ValueError)
    assert caught.value.actual_status == "Failed"
    # The SDK's own estimator raises the SDK's own exception, untouched.
    with pytest.raises(UnexpectedStatusException, match="Failed"):
        handle.latest_training_job.wait(logs="None")


def test_unknown_job_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no training job named 'nope'"):
        DwcSagemaker(mode="aws").describe_training_job("nope")


def test_download_output(s3: Any, train_script: Path, tmp_path: Path) -> None:
    dwc = DwcSagemaker(mode="aws")
    handle = train(dwc, train_script)
    assert dwc._backend.download_output(handle.latest_training_job.name, tmp_path / "none") is None
    # moto writes no artifacts: put the archive the container would upload.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b'{"accuracy": 0.97}'
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    key = f"model-data/{handle.latest_training_job.name}/output/output.tar.gz"
    s3.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=buffer.getvalue())
    dest = dwc._backend.download_output(handle.latest_training_job.name, tmp_path / "out")
    assert dest is not None
    assert json.loads((dest / "metrics.json").read_text()) == {"accuracy": 0.97}


def test_extra_channels_go_to_fit(sm: Any, s3: Any, train_script: Path, tmp_path: Path) -> None:
    holdout = tmp_path / "holdout.csv"
    holdout.write_text("1,2\n")
    handle = train(
        DwcSagemaker(mode="aws"), train_script, channels={"validation": f"file://{holdout}"}
    )
    described = sm.describe_training_job(TrainingJobName=handle.latest_training_job.name)
    channels = {c["ChannelName"]: c for c in described["InputDataConfig"]}
    assert set(channels) == {"train", "test", "validation"}
    uri = channels["validation"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == f"s3://{DEFAULT_BUCKET}/model-data/{handle.latest_training_job.name}/data/validation/"
    assert f"model-data/{handle.latest_training_job.name}/data/validation/holdout.csv" in keys(s3)


def test_estimator_settings_reach_the_sdk(sm: Any, train_script: Path, tmp_path: Path) -> None:
    helper = tmp_path / "helper.py"
    helper.write_text("X = 1\n")
    s3 = boto3.client("s3")
    for bucket in ("team-models", "team-code"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dwc = DwcSagemaker(mode="aws")
    sent: list[dict[str, Any]] = []  # CreateTrainingJob as the SDK sends it (moto drops fields)
    dwc._backend.sdk.sagemaker_client.meta.events.register(  # type: ignore[attr-defined]
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **kwargs: sent.append(dict(params)),
    )
    handle = train(
        dwc,
        train_script,
        environment={"MY_SETTING": "42"},
        metric_definitions=[{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}],
        max_run=3600,
        use_spot_instances=True,
        max_wait=7200,
        output_path="s3://team-models/runs",
        code_location="s3://team-code/src",
        dependencies=[str(helper)],
        subnets=["subnet-0abc"],
        security_group_ids=["sg-0def"],
        volume_size=50,
        volume_kms_key="alias/volumes",
        output_kms_key="alias/outputs",
        enable_network_isolation=True,
        checkpoint_s3_uri="s3://team-models/checkpoints",
        tags=[{"Key": "team", "Value": "ml"}],
    )
    job = handle.latest_training_job.name
    (request,) = sent
    assert request["Environment"] == {"MY_SETTING": "42"}
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}
    ]
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200
    }
    assert request["EnableManagedSpotTraining"] is True
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://team-models/runs", "KmsKeyId": "alias/outputs"
    }
    assert request["VpcConfig"] == {"Subnets": ["subnet-0abc"], "SecurityGroupIds": ["sg-0def"]}
    assert request["ResourceConfig"]["VolumeSizeInGB"] == 50
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == "alias/volumes"
    assert request["EnableNetworkIsolation"] is True
    assert request["CheckpointConfig"]["S3Uri"] == "s3://team-models/checkpoints"
    assert {"Key": "team", "Value": "ml"} in request["Tags"]
    assert handle.model_data == f"s3://team-models/runs/{job}/output/model.tar.gz"
    # code_location holds the source, with the dependency beside the entry point.
    archive = s3.get_object(Bucket="team-code", Key=f"src/{job}/source/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read())) as tar:
        assert sorted(tar.getnames()) == ["helper.py", "train.py"]


def test_a_file_output_path_is_refused_in_aws_mode(sm: Any, train_script: Path) -> None:
    with pytest.raises(ConfigurationError, match="file:// output path works only in local"):
        train(DwcSagemaker(mode="aws"), train_script, output_path="file:///tmp/out")
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_a_missing_code_bucket_is_a_clear_error(sm: Any, train_script: Path) -> None:
    with pytest.raises(FedsageError, match=r"cannot start training job .*team-code"):
        train(DwcSagemaker(mode="aws"), train_script, code_location="s3://team-code/src")
