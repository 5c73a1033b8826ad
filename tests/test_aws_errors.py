"""fedsage._aws_errors: one translation of botocore errors (real botocore exceptions).

The services themselves answer through moto in tests/aws and tests/kyma; here each
class of failure is built as botocore raises it, to check the class and the message.
"""

from __future__ import annotations

import botocore.exceptions as bce
import pytest

from fedsage._aws_errors import aws_errors, error_code, is_missing, translate
from fedsage.errors import (
    ConfigurationError,
    DeploymentError,
    EndpointError,
    FedsageError,
    StorageError,
)


def client_error(code: str, message: str, operation: str = "DescribeTrainingJob") -> Exception:
    return bce.ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_error_code():
    assert error_code(client_error("ThrottlingException", "slow down")) == "ThrottlingException"
    assert error_code(ValueError("x")) == ""


@pytest.mark.parametrize(
    ("exc", "kind", "name", "cls", "words"),
    [
        (bce.NoCredentialsError(), "object", "s3://b/k", ConfigurationError, ["no AWS credentials"]),
        (
            bce.ProfileNotFound(profile="dwc"),
            "",
            "",
            ConfigurationError,
            ["'dwc' does not exist", "aws configure --profile dwc"],
        ),
        (bce.NoRegionError(), "", "", ConfigurationError, ["AWS_DEFAULT_REGION"]),
        (
            client_error("ExpiredToken", "The security token included in the request is expired"),
            "training job",
            "churn",
            ConfigurationError,
            ["credentials were refused (ExpiredToken)"],
        ),
        (
            client_error("AccessDeniedException", "not authorized"),
            "job",
            "churn",
            ConfigurationError,
            ["access denied", "sagemaker:DescribeTrainingJob"],
        ),
        (
            client_error("AccessDenied", "Forbidden", "GetObject"),
            "object",
            "s3://my-bucket/k",
            ConfigurationError,
            ["arn:aws:s3:::my-bucket/*"],
        ),
        (
            client_error("ResourceLimitExceeded", "quota"),
            "endpoint",
            "churn",
            ConfigurationError,
            ["quota"],
        ),
        (
            client_error("ValidationException", "Requested resource not found."),
            "job",
            "churn",
            FedsageError,
            ["no training job named 'churn'", "fedsage jobs list"],
        ),
        (
            client_error("NoSuchBucket", "The specified bucket does not exist", "ListObjectsV2"),
            "object",
            "s3://gone/data/",
            StorageError,
            ["no bucket named 'gone'", "bucket_name"],
        ),
        (
            client_error("BucketAlreadyExists", "taken", "CreateBucket"),
            "bucket",
            "common",
            StorageError,
            ["another AWS account owns"],
        ),
        (
            client_error("ThrottlingException", "Rate exceeded"),
            "endpoint",
            "churn",
            EndpointError,
            ["cannot invoke 'churn'", "ThrottlingException", "Rate exceeded"],
        ),
        (
            bce.EndpointConnectionError(endpoint_url="https://sagemaker.example"),
            "",
            "",
            DeploymentError,
            ["cannot reach AWS"],
        ),
    ],
)
def test_translation(exc, kind, name, cls, words):
    error = cls if cls in (StorageError, EndpointError, DeploymentError) else FedsageError
    translated = translate(exc, "invoke", kind=kind, name=name, error=error)
    assert type(translated) is cls
    for word in words:
        assert word in str(translated)


def test_credentials_never_appear():
    exc = client_error("AccessDenied", "User AKIAIOSFODNN7EXAMPLE is not authorized")
    assert "AKIAIOSFODNN7EXAMPLE" not in str(translate(exc, "read", kind="bucket", name="b"))


def test_the_context_manager_raises_from_the_cause():
    exc = client_error("InternalFailure", "boom")
    translated = aws_errors("push", kind="ECR repository", name="churn", error=DeploymentError)
    with pytest.raises(DeploymentError, match="cannot push 'churn'") as caught, translated:
        raise exc
    assert caught.value.__cause__ is exc


def test_expected_codes_and_missing_resources_are_handed_back():
    dropped = client_error("ModelError", "the model failed", "InvokeEndpoint")
    with aws_errors("invoke", kind="endpoint", name="e", expected=("ModelError",)) as call:
        raise dropped
    assert call.code == "ModelError" and call.exception is dropped
    with aws_errors("read", kind="object", name="s3://b/k", missing_ok=True) as call:
        raise client_error("404", "Not Found", "HeadObject")
    assert call.missing and call.code == ""
    with aws_errors("read", kind="object", name="s3://b/k", missing_ok=True) as call:
        pass
    assert not call.missing and call.exception is None
    assert is_missing(client_error("ValidationException", "Could not find endpoint x"))
    assert not is_missing(client_error("ValidationException", "Value 'x' failed to satisfy"))
    # other errors pass untouched
    with pytest.raises(ValueError, match="not botocore"), aws_errors("read", missing_ok=True):
        raise ValueError("not botocore")
