"""SageMaker endpoint and log helpers for the aws backend (plain functions over clients)."""

from __future__ import annotations

import re
import time
from typing import Any

from ..errors import ConfigurationError, EndpointError
from ._aws_exceptions import model_error
from ._aws_session import sagemaker_errors

__all__ = [
    "LOG_GROUP",
    "delete_endpoint_resources",
    "endpoint_exists",
    "framework_version_of",
    "invoke_endpoint",
    "read_job_log",
    "wait_for_endpoint",
]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack")
_IMAGE_TAG = re.compile(
    r":(?P<version>\d[\w.]*-\d+(?:-py3\d+)?)-cpu-py3\d*$|:(?P<old>\d+\.\d+\.\d+)-cpu-py3$"
)


def framework_version_of(image: str) -> str:
    """``0.23-1`` from ``...sagemaker-scikit-learn:0.23-1-cpu-py3``.

    Raises
    ------
    ConfigurationError
        When ``image`` is not a SageMaker scikit-learn image.
    """
    match = _IMAGE_TAG.search(image)
    if not match or "sagemaker-scikit-learn" not in image:
        raise ConfigurationError(
            f"the training image {image!r} is not a SageMaker scikit-learn image; pass "
            "deploy(..., framework_version='0.23-1' or another supported version) to serve "
            "its model on that scikit-learn image"
        )
    return str(match.group("version") or match.group("old"))


def _call(client: Any, method: str, name: str, **kwargs: Any) -> Any:
    with sagemaker_errors(method.replace("_", " "), kind="endpoint", name=name):
        return getattr(client, method)(**kwargs)


def endpoint_exists(client: Any, name: str) -> bool:
    """Whether an endpoint ``name`` exists (in any status)."""
    with sagemaker_errors(
        "describe endpoint", kind="endpoint", name=name, missing_ok=True
    ) as call:
        client.describe_endpoint(EndpointName=name)
    return not call.missing


def wait_for_endpoint(client: Any, name: str, poll: float) -> dict[str, Any]:
    """Poll DescribeEndpoint until ``name`` leaves Creating/Updating; return its description.

    Raises
    ------
    EndpointError
        When the endpoint ends in any status other than ``InService``.
    """
    while True:
        description: dict[str, Any] = _call(client, "describe_endpoint", name, EndpointName=name)
        status = description["EndpointStatus"]
        if status not in _BUSY:
            break
        time.sleep(poll)
    if status != "InService":
        reason = description.get("FailureReason", "no reason given")
        raise EndpointError(
            f"endpoint {name} is {status}: {reason}; see its CloudWatch log group "
            f"/aws/sagemaker/Endpoints/{name}"
        )
    return description


def invoke_endpoint(
    runtime: Any, name: str, body: bytes, content_type: str, accept: str
) -> tuple[bytes, str]:
    """InvokeEndpoint; return (body, content type).

    Raises
    ------
    InvocationError
        For SageMaker's ``ModelError``: the container's status and body.
    EndpointError
        For any other failure (unknown endpoint, payload too large...).
    """
    args: dict[str, Any] = {"EndpointName": name, "Body": body, "ContentType": content_type}
    if accept:
        args["Accept"] = accept
    with sagemaker_errors(
        "invoke endpoint", kind="endpoint", name=name, expected=("ModelError",)
    ) as call:
        answer = runtime.invoke_endpoint(**args)
    if call.code == "ModelError":
        response = call.exception.response
        error = response.get("Error", {})
        status = response.get("OriginalStatusCode") or error.get("OriginalStatusCode")
        message = response.get("OriginalMessage") or error.get("OriginalMessage") or ""
        raise model_error(name, int(status or 0), str(message), response) from call.exception
    return answer["Body"].read(), str(answer.get("ContentType", ""))


def delete_endpoint_resources(client: Any, name: str) -> list[str]:
    """Delete endpoint ``name``, its endpoint configuration and its models; return the models."""
    description = _call(client, "describe_endpoint", name, EndpointName=name)
    config_name = description["EndpointConfigName"]
    config = _call(client, "describe_endpoint_config", name, EndpointConfigName=config_name)
    models = sorted({v["ModelName"] for v in config.get("ProductionVariants", [])})
    _call(client, "delete_endpoint", name, EndpointName=name)
    _call(client, "delete_endpoint_config", name, EndpointConfigName=config_name)
    for model in models:
        _call(client, "delete_model", name, ModelName=model)
    return models


def read_job_log(logs: Any, job_name: str) -> list[str]:
    """Every CloudWatch log line of a training job so far (all its streams, in order)."""
    return _read_log_group(logs, LOG_GROUP, f"{job_name}/", "training job", job_name)


def read_endpoint_log(logs: Any, endpoint_name: str) -> list[str]:
    """Every CloudWatch log line of an endpoint so far (all its instances, in order)."""
    group = f"/aws/sagemaker/Endpoints/{endpoint_name}"
    return _read_log_group(logs, group, "", "endpoint", endpoint_name)


def _read_log_group(logs: Any, group: str, stream_prefix: str, kind: str, name: str) -> list[str]:
    lines: list[str] = []
    prefix = {"logStreamNamePrefix": stream_prefix} if stream_prefix else {}
    with sagemaker_errors(f"read the log of {kind}", kind="log", name=name, missing_ok=True):
        streams = sorted(
            stream["logStreamName"]
            for page in logs.get_paginator("describe_log_streams").paginate(
                logGroupName=group, **prefix
            )
            for stream in page.get("logStreams", [])
        )
        for stream in streams:
            token: str | None = None
            while True:
                extra: dict[str, str] = {"nextToken": token} if token else {}
                page = logs.get_log_events(
                    logGroupName=group, logStreamName=stream, startFromHead=True, **extra
                )
                lines.extend(event["message"] for event in page.get("events", []))
                if not page.get("events") or page.get("nextForwardToken") == token:
                    break
                token = page.get("nextForwardToken")
    return lines  # a missing log group (no log yet) leaves no lines
