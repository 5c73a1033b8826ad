"""moto in server mode for the aws-mode tests.

One threaded moto server (127.0.0.1, a free port) serves the whole session; every test
starts from an empty moto state and an environment pointing boto3 at it through
``AWS_ENDPOINT_URL`` (honoured by every boto3 client, so by the SageMaker SDK's too).
The SDK builds its STS client with an explicit regional endpoint, which bypasses
``AWS_ENDPOINT_URL``; ``sts_to_moto`` redirects it for the tests that need it.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto.server", reason="the dev extra (moto[server]) is not installed")
if importlib.util.find_spec("sagemaker") is None:  # not imported here: fedsage imports it
    pytest.skip("the aws extra (sagemaker) is not installed", allow_module_level=True)

from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-central-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
DEFAULT_BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
# The scikit-learn 0.23-1 training/serving image in eu-central-1 (SDK image_uri_config).
IMAGE_0231 = "492215442770.dkr.ecr.eu-central-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_post(url: str, path: str, payload: dict[str, Any] | None = None) -> None:
    """POST to moto's own control API (reset, canned endpoint results...)."""
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@pytest.fixture(autouse=True)
def aws_env(
    clean_environ: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Fake credentials, eu-central-1, every client sent to moto, a fresh moto state."""
    moto_post(moto_url, "/moto-api/reset")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Never read the developer's own profiles.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("FEDSAGE_SAGEMAKER_ROLE", ROLE)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    from fedsage.backends.aws import AwsBackend

    # moto answers at once; poll fast instead of the SDK's 10 s.
    monkeypatch.setattr(AwsBackend, "job_poll", 0.05)
    monkeypatch.setattr(AwsBackend, "endpoint_poll", 0.05)
    # The SDK reports usage to an AWS telemetry bucket (a plain HTTPS GET outside boto3,
    # so AWS_ENDPOINT_URL does not catch it); keep the tests off the network.
    from sagemaker.telemetry import telemetry_logging

    monkeypatch.setattr(telemetry_logging, "_requests_helper", lambda url, timeout: None)
    # logs_for_job sleeps 5 s before its first DescribeTrainingJob (session._wait_until's
    # fixed default); moto's jobs are complete at once, so poll fast.
    import sagemaker.session

    wait_until = sagemaker.session._wait_until
    monkeypatch.setattr(sagemaker.session, "_wait_until", lambda fn, poll=5: wait_until(fn, 0.01))
    monkeypatch.chdir(tmp_path)
    yield moto_url


@pytest.fixture
def sts_to_moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send the SDK's pinned STS endpoint (get_execution_role) to moto too."""
    import sagemaker.session

    monkeypatch.setattr(sagemaker.session, "sts_regional_endpoint", lambda region: moto_url)


@pytest.fixture
def boto() -> Any:
    import boto3

    return boto3.Session()


@pytest.fixture
def s3(boto: Any) -> Any:
    return boto.client("s3")


@pytest.fixture
def sm(boto: Any) -> Any:
    return boto.client("sagemaker")


@pytest.fixture
def train_script(tmp_path: Path) -> Path:
    # A real SageMaker script: the same file trains and serves in local mode.
    script = tmp_path / "train.py"
    script.write_text(
        "import os\n"
        "import joblib\n"
        "import pandas as pd\n"
        "from sklearn.linear_model import LinearRegression\n\n\n"
        "def model_fn(model_dir):\n"
        "    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n\n\n"
        "if __name__ == '__main__':\n"
        "    print(os.environ['SM_CHANNEL_TRAIN'])\n"
        "    df = pd.read_csv(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'train.csv'),"
        " header=None)\n"
        "    model = LinearRegression().fit(df[[0]], df[1])\n"
        "    joblib.dump(model, os.path.join(os.environ['SM_MODEL_DIR'], 'model.joblib'))\n",
        encoding="utf-8",
    )
    return script


def moto_training_job(name: str) -> Any:
    """moto's in-process record of a training job (the server runs in this process)."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].training_jobs[name]


def moto_endpoint(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].endpoints[name]
