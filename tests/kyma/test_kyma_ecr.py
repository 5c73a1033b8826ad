"""ECR repository and login, against moto."""

from __future__ import annotations

import base64
import json

import pytest
from moto import mock_aws

from fedsage.errors import ConfigurationError, DeploymentError
from fedsage.kyma.cluster.ecr import aws_session, ecr_login, ensure_ecr_repository


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    (tmp_path / "config").write_text("[profile dwc]\nregion = eu-central-1\n")
    (tmp_path / "credentials").write_text(
        "[dwc]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )


@mock_aws
def test_repository_created_once_and_login(aws_env):
    session = aws_session("dwc")
    uri = ensure_ecr_repository("churn-2025-01-02-03-04-05", session)
    assert uri.endswith(".dkr.ecr.eu-central-1.amazonaws.com/churn-2025-01-02-03-04-05")
    assert ensure_ecr_repository("churn-2025-01-02-03-04-05", session) == uri
    repos = session.client("ecr").describe_repositories()["repositories"]
    assert len(repos) == 1
    login = ecr_login(session)
    assert uri.startswith(login.registry + "/")
    token = login._token
    assert token not in repr(login)
    client = login.client()
    assert client.host == login.registry and token not in repr(client)
    secret = login.pull_secret("fedsage-ecr", "fedsage")
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"][login.registry]
    assert entry["username"] == "AWS" and entry["auth"] == token


@mock_aws
def test_invalid_repository_name_is_a_deployment_error(aws_env):
    with pytest.raises(DeploymentError, match=r"CreateRepository|InvalidParameter"):
        ensure_ecr_repository("UPPER case!", aws_session("dwc"))


def test_unknown_profile(aws_env):
    with pytest.raises(ConfigurationError, match=r"profile 'nope' does not exist"):
        aws_session("nope")
