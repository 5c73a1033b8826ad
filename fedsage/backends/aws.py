"""The aws backend: SageMaker training jobs and endpoints, S3 channels, the runtime API.

Training uses the SageMaker Python SDK v2 ``SKLearn`` estimator, so the request
SageMaker receives (image, hyperparameter encoding, reserved ``sagemaker_*`` entries,
code upload) is the SDK's own.  Keys in the bucket follow the same layout as local
mode: ``<prefix>/<job>/data/<channel>/...``, ``<prefix>/<job>/source/sourcedir.tar.gz``
and ``<prefix>/<job>/output/{model,output}.tar.gz``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._aws_errors import aws_errors
from ..channels import upload_channel
from ..errors import ConfigurationError
from ..storage import ObjectStore, parse_s3_uri
from ..storage.s3 import S3Store, default_bucket_name, import_aws
from ..training.contract import decode_hyperparameters
from ..training.spec import base_from_name, name_from_base
from ._aws_endpoints import (
    delete_endpoint_resources,
    endpoint_exists,
    framework_version_of,
    invoke_endpoint,
    read_endpoint_log,
    read_job_log,
    wait_for_endpoint,
)
from ._aws_exceptions import training_error

if TYPE_CHECKING:
    from ..scoring.engine import PendingRequest, ScoringSummary
from ._aws_session import (
    ROLE_ENV,
    make_boto_session,
    resolve_role,
    sagemaker_errors,
    sdk_session,
)
from .base import Backend, Capabilities, KymaInputs, StartedJob, TrainingRequest

__all__ = ["ROLE_ENV", "AwsBackend"]

logger = logging.getLogger(__name__)



def _strip(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class AwsBackend(Backend):
    """Runs jobs and endpoints on Amazon SageMaker; channel data lives in S3.

    Parameters
    ----------
    bucket_name : str or None
        The bucket; ``None`` uses ``sagemaker-<region>-<account>``, one per account and
        region, created on first use (never a new bucket per call).
    prefix : str
        Key prefix for job data and artifacts.
    role : str or None, default=None
        The IAM role jobs run as; else ``FEDSAGE_SAGEMAKER_ROLE``, else the notebook
        instance's execution role (resolved on first use).
    boto_session : boto3.Session or None, default=None
        The session to use; by default one from the standard boto3 chain.

    Raises
    ------
    ConfigurationError
        When boto3/sagemaker are missing, or no region or credentials are configured.
    """

    mode = "aws"
    capabilities = Capabilities(
        default_instance_type=None,
        local_instance_types=False,
        host_runtime=False,
        kyma_needs_profile=True,
        uses_role=True,
        store_lists_cheaply=False,
        file_outputs=False,
        builtin_algorithms=None,
        distributed_training=True,
    )
    #: Seconds between polls while waiting for a job (the SDK's default) or an endpoint.
    job_poll: float = 10.0
    endpoint_poll: float = 15.0

    def __init__(
        self,
        bucket_name: str | None,
        prefix: str,
        *,
        role: str | None = None,
        boto_session: Any = None,
    ) -> None:
        self._boto = boto_session or make_boto_session()
        self.region = str(self._boto.region_name)
        self.prefix = prefix
        self._explicit_role = role
        self._role: str | None = None
        self._sdk: Any = None
        self._clients: dict[str, Any] = {}
        s3 = self._client("s3")
        if bucket_name:
            self.store = S3Store(bucket_name, client=s3, region=self.region)
        else:
            account = self._account()
            bucket = default_bucket_name(self.region, account)
            self.store = S3Store(bucket, client=s3, region=self.region, expected_owner=account)

    def __repr__(self) -> str:
        return (
            f"AwsBackend(bucket={self.store.bucket!r}, prefix={self.prefix!r}, "
            f"region={self.region!r})"
        )

    # -- plumbing --------------------------------------------------------------

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            config = None
            if service == "sagemaker-runtime":  # the container may take 60 s to answer
                config = import_aws("botocore.config").Config(read_timeout=70)
            self._clients[service] = self._boto.client(service, config=config)
        return self._clients[service]

    def _account(self) -> str:
        try:
            with aws_errors("call sts:GetCallerIdentity", error=ConfigurationError):
                return str(self._client("sts").get_caller_identity()["Account"])
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"cannot find the AWS account for the default bucket ({exc}); check the "
                "credentials, or pass bucket_name"
            ) from exc.__cause__

    @property
    def sdk(self) -> Any:
        """The ``sagemaker.Session`` (created on first use)."""
        if self._sdk is None:
            self._sdk = sdk_session(self._boto, self.store.bucket)
        return self._sdk

    @property
    def role(self) -> str:
        """The IAM role ARN (or name) jobs run as, resolved on first use."""
        if self._role is None:
            self._role = resolve_role(self._explicit_role, lambda: self.sdk)
        return self._role

    def _call(
        self, service: str, method: str, *, kind: str = "", name: str = "", **kwargs: Any
    ) -> Any:
        with sagemaker_errors(method.replace("_", " "), kind=kind, name=name):
            return getattr(self._client(service), method)(**kwargs)

    def _pages(self, service: str, method: str, key: str, **kwargs: Any) -> list[Any]:
        with sagemaker_errors(method.replace("_", " ")):
            paginator = self._client(service).get_paginator(method)
            return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts)).lstrip("/")

    # -- training ------------------------------------------------------------

    def start_training_job(self, request: TrainingRequest) -> StartedJob:
        training_input = import_aws("sagemaker.inputs").TrainingInput
        job_name = name_from_base(request.base_job_name)
        default_output = self.store.uri(self.prefix) if self.prefix else f"s3://{self.store.bucket}"
        output_path = request.settings.output_path or default_output
        try:
            inputs = {
                plan.name: training_input(
                    upload_channel(plan, self.store, self._key(job_name, "data")),
                    content_type=plan.content_type,
                    distribution=plan.distribution,
                )
                for plan in request.channels
            }
            estimator = self._estimator(request, output_path)
            self._fit(estimator, inputs, job_name)
        except BaseException:
            self.store.delete_prefix(self._key(job_name) + "/")
            raise
        logger.info("started SageMaker training job %s in %s", job_name, self.region)
        description = self.describe_training_job(job_name)
        return StartedJob(
            job_name,
            output_path,
            dict(description.get("HyperParameters") or {}),
            estimator=estimator,
        )

    def attach(self, job_name: str) -> Any:
        """The SDK's ``attach``: the estimator of an existing job, of its image's kind."""
        description = self.describe_training_job(job_name)  # fedsage's error if unknown
        image = description.get("AlgorithmSpecification", {}).get("TrainingImage", "")
        hyperparameters = description.get("HyperParameters") or {}
        if "sagemaker_program" not in hyperparameters:  # a built-in algorithm
            estimator_class = import_aws("sagemaker.estimator").Estimator
        elif "sagemaker-xgboost" in image:
            estimator_class = import_aws("sagemaker.xgboost").XGBoost
        else:
            estimator_class = import_aws("sagemaker.sklearn").SKLearn
        try:
            return estimator_class.attach(job_name, sagemaker_session=self.sdk)
        except ValueError as exc:
            raise ConfigurationError(
                f"training job {job_name} (image {image}) cannot be attached as a "
                f"{estimator_class.__name__} estimator: {exc}"
            ) from exc

    def _estimator(self, request: TrainingRequest, output_path: str) -> Any:
        common: dict[str, Any] = {
            "instance_type": request.instance_type,
            "role": self.role,
            "base_job_name": request.base_job_name,
            "sagemaker_session": self.sdk,
            "output_path": output_path,
            **request.settings.sdk_kwargs(),
        }
        if request.algorithm is not None:
            return self._algorithm_estimator(request, common)
        assert request.entry_point is not None  # the facade checked it
        if request.source_dir is None:
            entry_point, source_dir = str(request.entry_point), None
        elif isinstance(request.source_dir, str):  # s3://.../sourcedir.tar.gz, used as is
            entry_point, source_dir = request.entry_point.as_posix(), request.source_dir
        else:
            entry_point, source_dir = request.entry_point.name, str(request.source_dir)
        module, name = (
            ("sagemaker.xgboost", "XGBoost")
            if request.framework == "xgboost"
            else ("sagemaker.sklearn", "SKLearn")
        )
        common.setdefault("code_location", output_path)
        try:
            return getattr(import_aws(module), name)(
                entry_point=entry_point,
                source_dir=source_dir,
                framework_version=request.framework_version,
                py_version="py3",
                instance_count=1,
                # Decoded values: the SDK JSON-encodes them exactly as local mode does.
                hyperparameters=decode_hyperparameters(request.hyperparameters),
                **common,
            )
        except ValueError as exc:  # e.g. a version the SDK has no image for
            raise ConfigurationError(
                f"the SageMaker SDK refused framework_version={request.framework_version!r}: "
                f"{exc}; use one of {', '.join(self.image_versions(request.framework))}"
            ) from exc

    def _algorithm_estimator(self, request: TrainingRequest, common: dict[str, Any]) -> Any:
        """The SDK's generic ``Estimator`` on the built-in algorithm's image."""
        image_uris = import_aws("sagemaker.image_uris")
        try:
            image = image_uris.retrieve(
                request.algorithm, self.region, request.framework_version
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"the SageMaker SDK has no {request.algorithm!r} image for framework_version="
                f"{request.framework_version!r} in {self.region}: {exc}"
            ) from exc
        estimator = import_aws("sagemaker.estimator").Estimator(
            image, instance_count=request.instance_count, **common
        )
        estimator.set_hyperparameters(**request.hyperparameters)
        return estimator

    def _fit(self, estimator: Any, inputs: dict[str, Any], job_name: str) -> None:
        with sagemaker_errors("start training job", kind="job", name=job_name):
            estimator.fit(inputs, wait=False, job_name=job_name)

    def image_versions(self, framework: str = "scikit-learn") -> list[str]:
        """The image versions of ``framework`` this SDK can train with."""
        name = "xgboost" if framework == "xgboost" else "sklearn"
        config = import_aws("sagemaker.image_uris").config_for_framework(name)
        scopes = config.get("training", config)  # per-scope layout in recent SDKs
        return sorted(scopes.get("versions", {}))

    def describe_training_job(self, name: str) -> dict[str, Any]:
        return _strip(
            self._call(
                "sagemaker", "describe_training_job", kind="job", name=name, TrainingJobName=name
            )
        )

    def wait_training_job(
        self, name: str, *, logs: str | bool = "All", raise_on_failure: bool = True
    ) -> dict[str, Any]:
        log_type = "All" if logs is True else "None" if logs in (False, None) else str(logs)
        sdk = self.sdk
        unexpected = import_aws("sagemaker.exceptions").UnexpectedStatusException
        try:
            with sagemaker_errors("wait for training job", kind="job", name=name):
                if log_type == "None":
                    sdk.wait_for_job(name, poll=self.job_poll)
                else:  # prints the CloudWatch log stream, as the SDK does
                    sdk.logs_for_job(name, wait=True, poll=self.job_poll, log_type=log_type)
        except unexpected:
            pass  # the status is read below and reported as fedsage's TrainingError
        description = self.describe_training_job(name)
        status = description["TrainingJobStatus"]
        if status == "Failed" and raise_on_failure:
            raise training_error(name, status, description.get("FailureReason", ""))
        if status == "Stopped":
            logger.warning("training job %s was stopped", name)
        return description

    def stop_training_job(self, name: str) -> None:
        if self.job_has_ended(name):
            return
        self._call("sagemaker", "stop_training_job", kind="job", name=name, TrainingJobName=name)

    def list_training_jobs(self) -> list[dict[str, Any]]:
        return self._pages(
            "sagemaker",
            "list_training_jobs",
            "TrainingJobSummaries",
            SortBy="CreationTime",
            SortOrder="Ascending",
        )

    def training_log(self, name: str) -> list[str]:
        self.describe_training_job(name)  # a clear error for an unknown job
        return read_job_log(self._client("logs"), name)

    def training_metrics(self, name: str) -> list[dict[str, Any]]:
        """The final value of each metric SageMaker extracted (``FinalMetricDataList``)."""
        description = self.describe_training_job(name)
        return [
            {"Timestamp": m.get("Timestamp"), "MetricName": m["MetricName"], "Value": m["Value"]}
            for m in description.get("FinalMetricDataList") or []
        ]

    def download_output(self, name: str, dest: Path) -> Path | None:
        description = self.describe_training_job(name)
        output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        uri = parse_s3_uri(f"{output_path}/{name}/output/output.tar.gz")
        return self._store_for(uri.bucket).extract(uri.key, dest)

    # -- batch transform ---------------------------------------------------------

    def transformer(self, job_name: str, **settings: Any) -> Any:
        """The SDK's own ``Transformer``: ``attach(job_name).transformer(**settings)``.

        The SDK creates the SageMaker model from the job when the transformer first runs
        a job, through fedsage's session (its bucket and prefix).
        """
        self.completed_job(job_name)
        return self.attach(job_name).transformer(**settings)

    # -- batch scoring -------------------------------------------------------------

    def batch_transform(self, model: str, pending: PendingRequest) -> ScoringSummary:
        from ..scoring.engine import open_target_writer
        from ._aws_transform import transform_through_s3

        try:
            description = self.completed_job(model)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"in aws mode batch_transform scores a completed training job's model; "
                f"{model!r} is not one ({exc}). An endpoint is not a Batch Transform model: "
                "pass the job (or its estimator)"
            ) from exc
        role = self._explicit_role or os.environ.get(ROLE_ENV) or description["RoleArn"]
        model_name = name_from_base(base_from_name(model))
        sdk_model = self._serving_model(
            model, description, role, model_name, None, caller="batch_transform"
        )
        with pending.open() as request:
            if not request.plan.content_type_given:
                request.plan.content_type_reason = (
                    "the default; aws mode sends text/csv parts (SplitType='Line')"
                )
            return transform_through_s3(
                store=self.store,
                prefix=self._key(model),
                model=sdk_model,
                request=request,
                open_writer=open_target_writer,
                model_name=f"job {model}",
            )

    # -- Kyma --------------------------------------------------------------------

    def kyma_inputs(self, job_name: str, scratch: Path) -> KymaInputs:
        description = self.completed_job(job_name)
        hyperparameters = decode_hyperparameters(description.get("HyperParameters") or {})
        image = description["AlgorithmSpecification"]["TrainingImage"]
        if "sagemaker-xgboost" in image:
            framework, version = "xgboost", image.rsplit(":", 1)[-1].split("-cpu")[0]
        else:
            framework, version = "scikit-learn", ""
        builtin = "sagemaker_program" not in hyperparameters
        if builtin and framework != "xgboost":
            raise ConfigurationError(
                f"training job {job_name} ran the closed built-in image {image}; "
                "deploy_to_kyma serves scikit-learn and XGBoost models: serve this one "
                "as a SageMaker endpoint with deploy()"
            )
        model = parse_s3_uri(description["ModelArtifacts"]["S3ModelArtifacts"])
        model_tar = self._store_for(model.bucket).download(model.key, scratch / "model.tar.gz")
        if builtin:
            from ..builtin import xgboost as builtin_xgb

            return KymaInputs(
                model_tar=model_tar,
                code_tar=builtin_xgb.pack_serving_code(scratch / "sourcedir.tar.gz"),
                program=builtin_xgb.SERVING_PROGRAM,
                framework_version=version,
                framework=framework,
                env=builtin_xgb.serving_env(),
            )
        source = parse_s3_uri(str(hyperparameters["sagemaker_submit_directory"]))
        return KymaInputs(
            model_tar=model_tar,
            code_tar=self._store_for(source.bucket).download(
                source.key, scratch / "sourcedir.tar.gz"
            ),
            program=str(hyperparameters["sagemaker_program"]),
            framework_version=version or framework_version_of(image),
            framework=framework,
        )

    def _deploy_kyma(
        self,
        name: str,
        job_name: str,
        inputs: KymaInputs,
        *,
        profile_name: str | None,
        replicas: int,
        progress: Any,
    ) -> str:
        from ..kyma import cluster

        return cluster.deploy(
            name=name,
            model_tar=inputs.model_tar,
            code_tar=inputs.code_tar,
            program=inputs.program,
            framework_version=inputs.framework_version,
            replicas=replicas,
            profile_name=profile_name,
            job_name=job_name,
            progress=progress,
            framework=inputs.framework,
            env=inputs.env,
        )

    def _store_for(self, bucket: str) -> ObjectStore:
        if bucket == self.store.bucket:
            return self.store
        return S3Store(bucket, client=self._client("s3"), region=self.region)

    # -- endpoints -------------------------------------------------------------

    def deploy(
        self,
        job_name: str,
        *,
        initial_instance_count: int,
        instance_type: str,
        endpoint_name: str | None,
        framework_version: str | None = None,
    ) -> str:
        description = self.completed_job(job_name)
        role = self._explicit_role or os.environ.get(ROLE_ENV) or description["RoleArn"]
        model_name = name_from_base(base_from_name(job_name))
        name = endpoint_name or model_name
        model = self._serving_model(job_name, description, role, model_name, framework_version)
        return self._deploy_model(model, job_name, name, initial_instance_count, instance_type)

    def _serving_model(
        self,
        job_name: str,
        description: dict[str, Any],
        role: str,
        model_name: str,
        framework_version: str | None,
        caller: str = "deploy",
    ) -> Any:
        """The SDK model that serves ``job_name``'s artifacts (deploy and batch transform)."""
        image = description["AlgorithmSpecification"].get("TrainingImage", "")
        hyperparameters = decode_hyperparameters(description.get("HyperParameters") or {})
        if "sagemaker_program" not in hyperparameters or "sagemaker-xgboost" in image:
            # A built-in algorithm serves from its own image; XGBoost script mode from the
            # XGBoost image of the same version.
            return self._model_on_image(description, role, model_name, hyperparameters)
        if framework_version is not None and "sagemaker-scikit-learn" not in image:
            # A script-mode model trained on another image (not by fedsage): serve it on
            # the scikit-learn image the caller names.
            trained = framework_version
        else:
            trained = framework_version_of(image)
        if framework_version is not None and framework_version != trained:
            raise ConfigurationError(
                f"the framework_version parameter of {caller} is {framework_version!r}, but job "
                f"{job_name} was trained with {trained!r}; a model must be served by the "
                "image that trained it, so leave framework_version out"
            )
        return import_aws("sagemaker.sklearn").SKLearnModel(
            model_data=description["ModelArtifacts"]["S3ModelArtifacts"],
            role=role,
            entry_point=hyperparameters["sagemaker_program"],
            source_dir=hyperparameters["sagemaker_submit_directory"],
            framework_version=trained,
            py_version="py3",
            sagemaker_session=self.sdk,
            name=model_name,
        )

    def _model_on_image(
        self, description: dict[str, Any], role: str, model_name: str, hyperparameters: Any
    ) -> Any:
        """The SDK model of a built-in algorithm's or an XGBoost script's job."""
        image = description["AlgorithmSpecification"]["TrainingImage"]
        model_data = description["ModelArtifacts"]["S3ModelArtifacts"]
        if "sagemaker_program" not in hyperparameters:
            return import_aws("sagemaker.model").Model(
                image_uri=image,
                model_data=model_data,
                role=role,
                sagemaker_session=self.sdk,
                name=model_name,
            )
        return import_aws("sagemaker.xgboost").XGBoostModel(
            model_data=model_data,
            role=role,
            entry_point=hyperparameters["sagemaker_program"],
            source_dir=hyperparameters["sagemaker_submit_directory"],
            framework_version=image.rsplit(":", 1)[-1].split("-cpu")[0],
            py_version="py3",
            sagemaker_session=self.sdk,
            name=model_name,
        )

    def _deploy_model(
        self, model: Any, job_name: str, name: str, instance_count: int, instance_type: str
    ) -> str:
        if endpoint_exists(self._client("sagemaker"), name):
            raise ConfigurationError(
                f"an endpoint named {name!r} already exists; pass another endpoint_name or "
                f"delete it with: fedsage endpoints delete {name} --mode aws"
            )
        initial_instance_count = instance_count
        with sagemaker_errors("create endpoint", kind="endpoint", name=name):
            try:
                model.deploy(
                    initial_instance_count=initial_instance_count,
                    instance_type=instance_type,
                    endpoint_name=name,
                    wait=False,
                )
            except ValueError as exc:  # e.g. no inference image for this version
                raise ConfigurationError(f"cannot serve job {job_name}'s model: {exc}") from exc
        self._wait_for_endpoint(name)
        logger.info("endpoint %s serves job %s (%s)", name, job_name, instance_type)
        return name

    def _wait_for_endpoint(self, name: str) -> dict[str, Any]:
        return wait_for_endpoint(self._client("sagemaker"), name, self.endpoint_poll)

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        """The DescribeEndpoint response for ``name``."""
        return _strip(
            self._call(
                "sagemaker", "describe_endpoint", kind="endpoint", name=name, EndpointName=name
            )
        )

    def endpoint_logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        """The endpoint's CloudWatch log (``/aws/sagemaker/Endpoints/NAME``)."""
        self.describe_endpoint(name)  # a clear error for an unknown endpoint
        logs = self._client("logs")
        seen = 0
        while True:
            lines = read_endpoint_log(logs, name)
            yield from lines[seen:]
            seen = len(lines)
            if not follow:
                return
            time.sleep(self.endpoint_poll)

    def invoke_endpoint(
        self, endpoint_name: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        runtime = self._client("sagemaker-runtime")
        return invoke_endpoint(runtime, endpoint_name, body, content_type, accept)

    def delete_endpoint(self, endpoint_name: str) -> None:
        """Delete the endpoint, its endpoint configuration and its models."""
        models = delete_endpoint_resources(self._client("sagemaker"), endpoint_name)
        logger.info("deleted endpoint %s, its config and model(s) %s", endpoint_name, models)

    def list_endpoints(self) -> list[dict[str, Any]]:
        return self._pages(
            "sagemaker", "list_endpoints", "Endpoints", SortBy="CreationTime", SortOrder="Ascending"
        )

    # -- Kyma --------------------------------------------------------------------

    def delete_channel_data(self, job_name: str) -> int:
        """Remove ``<prefix>/<job>/data/`` (``cleanup_resources``); return objects removed."""
        return self.store.delete_prefix(self._key(job_name, "data") + "/")
