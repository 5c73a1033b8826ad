"""ECR repository and login, against moto."""

from __future__ import annotations

import base64
import json

import pytest
from moto import mock_aws

from fedsage.errors import ConfigurationError, DeploymentError
from fedsage.kyma.cluster.base_images import base_image_client
from fedsage.kyma.cluster.ecr import aws_session, ecr_login, ensure_ecr_repository, is_ecr_registry
from fedsage.kyma.cluster.registry_client import RegistryClient


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


@pytest.mark.parametrize(
    "host",
    [
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com",
        "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "237065988967.dkr.ecr.us-gov-west-1.amazonaws.com",
    ],
)
def test_ecr_registry_hosts(host):
    assert is_ecr_registry(host)


@pytest.mark.parametrize(
    "host",
    [
        "abc123.execute-api.eu-central-1.amazonaws.com",  # anyone's API Gateway
        "mybucket.s3-website.eu-central-1.amazonaws.com",  # anyone's S3 website
        "evil.amazonaws.com",
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com.evil.example",
        "x123456789012.dkr.ecr.eu-central-1.amazonaws.com",
        "12345678901.dkr.ecr.eu-central-1.amazonaws.com",
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com:8443",
        "123456789012.dkr.ecr.eu-central-1.amazonaws.org",
    ],
)
def test_hosts_that_are_not_ecr_registries(host):
    assert not is_ecr_registry(host)


@mock_aws
def test_the_ecr_token_goes_only_to_ecr_registries(aws_env):
    login = ecr_login(aws_session("dwc"))
    sagemaker = base_image_client("683313688378.dkr.ecr.us-east-1.amazonaws.com", login)
    assert sagemaker.url.startswith("https://") and "auth=***" in repr(sagemaker)
    for host in ("abc123.execute-api.eu-central-1.amazonaws.com", "registry.example:5000"):
        client = base_image_client(host, login)
        assert client.url == f"https://{host}" and "auth=none" in repr(client)
    assert base_image_client("127.0.0.1:5000", login).url == "http://127.0.0.1:5000"
    assert base_image_client("[::1]:5000", login).url == "http://[::1]:5000"
    # a name that only looks like a loopback address is a remote host: https
    assert base_image_client("127.0.0.1.attacker.example:5000", login).url.startswith("https:")
    with pytest.raises(ConfigurationError, match="not an Amazon ECR registry"):
        login.client_for("abc123.execute-api.eu-central-1.amazonaws.com")


@mock_aws
def test_base_image_setting_cannot_redirect_the_ecr_token(aws_env, monkeypatch):
    """FEDSAGE_KYMA_BASE_IMAGE naming a host under amazonaws.com that is not ECR (an API
    Gateway anyone can run) must not receive the ECR token.  The host must not be
    contacted, so the client the deploy would read the base with is captured."""
    from fedsage.kyma.cluster import pipeline

    used = []
    monkeypatch.setattr(pipeline, "base_from_registry", lambda client, *ref: used.append(client))
    login = ecr_login(aws_session("dwc"))
    for reference in (
        "abc123.execute-api.eu-central-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "127.0.0.1.attacker.example:5000/base:1",
    ):
        monkeypatch.setenv("FEDSAGE_KYMA_BASE_IMAGE", reference)
        pipeline._base_image(login, "eu-central-1", "scikit-learn", "1.2-1")
    assert [repr(client) for client in used] == [
        "RegistryClient('https://abc123.execute-api.eu-central-1.amazonaws.com', auth=none)",
        "RegistryClient('https://127.0.0.1.attacker.example:5000', auth=none)",
    ]


def test_credentials_never_go_over_plain_http_to_another_host():
    with pytest.raises(ConfigurationError, match="plain http"):
        RegistryClient("http://registry.example:5000", token="dG9rZW4=")
    with pytest.raises(ConfigurationError, match="plain http"):
        RegistryClient("http://127.0.0.1.attacker.example", username="u", password="p")
    with RegistryClient("http://127.0.0.1:5000", token="dG9rZW4=") as local:
        assert "auth=***" in repr(local)
