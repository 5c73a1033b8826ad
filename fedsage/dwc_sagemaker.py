"""``DwcSagemaker``: fedml-aws's public API, in local or AWS mode.

This module only checks arguments, applies fedml-aws's defaults and picks a backend;
the backends (:mod:`fedsage.backends`) do the work.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from . import _validation as check
from . import backends
from ._log import announce_once
from .backends import MODE_ENV, TrainingRequest
from .channels import check_content_type, plan_channel
from .errors import ConfigurationError
from .estimator import TrainingJobHandle
from .storage import check_bucket_name, check_prefix, parse_s3_uri
from .training.contract import encode_hyperparameters
from .training.settings import EstimatorSettings, check_settings
from .training.spec import check_base_job_name, check_job_name

__all__ = ["MODE_ENV", "DwcSagemaker"]

logger = logging.getLogger(__name__)


class DwcSagemaker:
    """Train scikit-learn models with SageMaker's contract; deploy and call them.

    Parameters
    ----------
    prefix : str, default='model-data'
        Key prefix in the bucket for training data and artifacts.
    bucket_name : str or None, default=None
        The bucket.  ``None`` uses one default bucket (``fedsage-local`` in local
        mode; ``sagemaker-<region>-<account>`` in aws mode), never a new one per call.
    mode : {'local', 'aws'} or None, default=None
        Where things run.  ``None`` reads ``FEDSAGE_MODE``, else ``local``.
    role : str or None, default=None
        aws mode only: the IAM role for training and endpoints.  ``None`` reads
        ``FEDSAGE_SAGEMAKER_ROLE``, else the notebook instance's execution role.

    Raises
    ------
    ConfigurationError
        For an invalid prefix, bucket name or mode.

    Examples
    --------
    >>> from fedsage import DwcSagemaker
    >>> dwc = DwcSagemaker(prefix="iris")                      # doctest: +SKIP
    >>> clf = dwc.train_sklearn_model(df, train_script="train.py", wait=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        prefix: str = "model-data",
        bucket_name: str | None = None,
        *,
        mode: str | None = None,
        role: str | None = None,
    ) -> None:
        self.prefix = check_prefix(prefix)
        if bucket_name is not None:
            check_bucket_name(bucket_name)
        backends.resolve_mode(mode)  # a bad mode fails before any backend is built
        self._backend = backends.get(mode, bucket_name=bucket_name, prefix=self.prefix, role=role)
        self.mode = self._backend.mode
        if role is not None and not self._backend.capabilities.uses_role:
            logger.info("role=%r means nothing in %s mode and is ignored", role, self.mode)
        self.bucket_name = self._backend.store.bucket
        announce_once(
            self.mode,
            f"fedsage is in {self.mode} mode (bucket {self.bucket_name!r}); "
            f"set {MODE_ENV}=local|aws or pass mode= to change it",
        )

    def __repr__(self) -> str:
        return (
            f"DwcSagemaker(prefix={self.prefix!r}, bucket_name={self.bucket_name!r}, "
            f"mode={self.mode!r})"
        )

    # -- training ------------------------------------------------------------

    def train_sklearn_model(
        self,
        train_data: Any = None,
        test_data: Any = None,
        content_type: str | None = None,
        train_script: str | None = None,
        source_dir: str | None = None,
        instance_count: int = 1,
        instance_type: str | None = None,
        base_job_name: str | None = None,
        hyperparameters: dict[Any, Any] | None = None,
        wait: bool = False,
        logs: str | bool = "All",
        download_output: bool = False,
        *,
        framework_version: str | None = None,
        channels: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        max_run: int | None = None,
        output_path: str | None = None,
        code_location: str | None = None,
        dependencies: list[str] | None = None,
        tags: list[dict[str, str]] | None = None,
        subnets: list[str] | None = None,
        security_group_ids: list[str] | None = None,
        volume_kms_key: str | None = None,
        output_kms_key: str | None = None,
        use_spot_instances: bool | None = None,
        max_wait: int | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        enable_network_isolation: bool | None = None,
        volume_size: int | None = None,
    ) -> Any:
        """Train a scikit-learn model with a SageMaker script-mode training script.

        Parameters
        ----------
        train_data : DataFrame, DbConnection table/query, str, Path or BytesIO
            Training data: a DataFrame (written as ``train.csv`` without header and
            without index), a table or query from :class:`~fedsage.DbConnection`
            (streamed), a path to any file or folder (plain, or ``file://``), an
            ``s3://`` URI, or an ``io.BytesIO`` (uploaded as ``train.protobuf``, as
            fedml-aws sends RecordIO-protobuf data).
        test_data : same as ``train_data``, optional
            Test data, the ``test`` channel.
        content_type : str, optional
            The input data's type as SageMaker takes it (any MIME string, or fedml-aws's
            ``'csv'``), recorded on the channels as given.
        train_script : str
            The entry point; with ``source_dir`` it must sit at that folder's root.
        source_dir : str, optional
            A folder packed as ``sourcedir.tar.gz`` (a ``requirements.txt`` in it is
            installed into a cached overlay), or an ``s3://`` URI of such an archive.
        instance_count : int, default=1
            Must be 1: SageMaker's scikit-learn estimator does not train distributed.
        instance_type : str, optional
            ``local`` or an ``ml.*`` type; in local mode an ``ml.*`` type runs locally.
        base_job_name : str, optional
            Prefix of the job name (default ``sagemaker-scikit-learn``); a timestamp
            is appended as SageMaker does.
        hyperparameters : dict, optional
            Passed to the script as ``--name value`` arguments, JSON-encoded as the
            SageMaker SDK does.
        wait : bool, default=False
            Block until the job ends.
        logs : {'All', 'None', 'Training', 'Rules'} or bool, default='All'
            Which logs to print while waiting.
        download_output : bool, default=False
            Wait, then extract ``output.tar.gz`` into ``<job name>/output/`` in the
            working folder.
        framework_version : str, optional
            The SageMaker scikit-learn image version whose Python and libraries the
            job runs with (default ``'0.23-1'``, as fedml-aws); ``'host'`` runs in
            fedsage's own environment.
        channels : dict, optional
            Extra channels beside ``train`` and ``test``, name -> input (same kinds as
            ``train_data``); the script sees ``SM_CHANNEL_<NAME>``.
        environment, metric_definitions, max_run, output_path, code_location, \
dependencies, tags, subnets, security_group_ids, volume_kms_key, output_kms_key, \
use_spot_instances, max_wait, checkpoint_s3_uri, checkpoint_local_path, \
enable_network_isolation, volume_size : optional
            The SageMaker estimator's settings of the same names (defaults as in the
            SDK), passed to the SDK in aws mode.  Local mode: ``environment`` is the job's
            environment (nothing else from this process reaches the script),
            ``metric_definitions`` are matched against the log (``describe()``'s
            ``FinalMetricDataList``, ``training_job_analytics``), ``max_run`` stops the job
            as ``MaxRuntimeExceeded``, ``output_path`` / ``code_location`` move the
            artifacts (``output_path`` may be ``file://``), ``dependencies`` are copied
            beside the entry point, checkpoints are restored from and saved to
            ``checkpoint_s3_uri`` through ``/opt/ml/checkpoints``,
            ``enable_network_isolation`` gives the script no network; the rest is
            recorded on the job and shown by ``describe()`` (docs/training.md).

        Returns
        -------
        TrainingJobHandle or sagemaker.sklearn.SKLearn
            aws mode: the SDK's own fitted ``SKLearn`` estimator, as fedml-aws returns it.
            Local mode: an estimator-like handle (``latest_training_job``,
            ``model_data``, ``deploy()``, ``wait()``...).  Both are accepted by
            :meth:`deploy` and :meth:`deploy_to_kyma`.

        Raises
        ------
        ConfigurationError
            For any invalid argument, before anything is written.
        TrainingError
            When waiting and the job fails.
        """
        caller = "train_sklearn_model"
        request = self._training_request(
            caller,
            train_data=train_data,
            test_data=test_data,
            content_type=content_type,
            train_script=train_script,
            source_dir=source_dir,
            instance_count=instance_count,
            instance_type=instance_type,
            base_job_name=base_job_name,
            hyperparameters=hyperparameters,
            framework_version=framework_version,
            channels=channels,
            settings=check_settings(
                caller,
                environment=environment,
                metric_definitions=metric_definitions,
                max_run=max_run,
                output_path=output_path,
                code_location=code_location,
                dependencies=dependencies,
                tags=tags,
                subnets=subnets,
                security_group_ids=security_group_ids,
                volume_kms_key=volume_kms_key,
                output_kms_key=output_kms_key,
                use_spot_instances=use_spot_instances,
                max_wait=max_wait,
                checkpoint_s3_uri=checkpoint_s3_uri,
                checkpoint_local_path=checkpoint_local_path,
                enable_network_isolation=enable_network_isolation,
                volume_size=volume_size,
            ),
        )
        check.check_bool(wait, "wait", caller)
        logs = check.check_logs(logs, caller)
        check.check_bool(download_output, "download_output", caller)

        started = self._backend.start_training_job(request)
        handle = started.estimator or TrainingJobHandle(
            self._backend,
            started.name,
            base_job_name=request.base_job_name,
            framework_version=request.framework_version,
            entry_point=request.entry_point.name,
            source_dir=str(request.source_dir) if request.source_dir else None,
            instance_type=request.instance_type,
            output_path=started.output_path,
            hyperparameters=started.hyperparameters,
        )
        if wait or download_output:
            self._backend.wait_training_job(started.name, logs=logs)
        if download_output:
            dest = Path.cwd() / started.name / "output"
            if self._backend.download_output(started.name, dest) is None:
                logger.info("job %s wrote no output data", started.name)
        return handle

    def _training_request(
        self,
        caller: str,
        *,
        train_data: Any,
        test_data: Any,
        content_type: str | None,
        train_script: str | None,
        source_dir: str | None,
        instance_count: int,
        instance_type: str | None,
        base_job_name: str | None,
        hyperparameters: dict[Any, Any] | None,
        framework_version: str | None,
        channels: dict[str, Any] | None = None,
        settings: EstimatorSettings | None = None,
    ) -> TrainingRequest:
        from .runtimes import DEFAULT_FRAMEWORK_VERSION, check_framework_version

        content_type = check_content_type(content_type)
        if train_data is None:
            raise ConfigurationError(
                f"the train_data parameter of {caller} is required: pass a DataFrame, a "
                "DbConnection table or query, a path to a file or folder, an s3:// URI or "
                "an io.BytesIO"
            )
        capabilities = self._backend.capabilities
        store = self._backend.store if capabilities.store_lists_cheaply else None
        plans = [plan_channel("train", train_data, content_type, param="train_data", store=store)]
        if test_data is not None:
            plans.append(
                plan_channel("test", test_data, content_type, param="test_data", store=store)
            )
        if channels is not None:
            if not isinstance(channels, dict):
                raise ConfigurationError(
                    f"the channels parameter of {caller} must be a dict of channel name -> "
                    f"data; got {type(channels).__name__} instead"
                )
            for name, data in channels.items():
                if name in ("train", "test"):
                    raise ConfigurationError(
                        f"the channels parameter of {caller} names the channel {name!r}, which "
                        f"train_data/test_data already fill; pick another name"
                    )
                param = f"channels[{name!r}]"
                plans.append(plan_channel(name, data, content_type, param=param, store=store))
        if train_script is None:
            raise ConfigurationError(
                f"the train_script parameter of {caller} is required: the path of the "
                "training script (the entry point)"
            )
        resolved_source: Path | str | None = None
        if source_dir is None:
            entry_point = check.check_existing_file(train_script, "train_script", caller)
        elif isinstance(source_dir, str) and source_dir.startswith("s3://"):
            uri = parse_s3_uri(source_dir, "source_dir")
            if store is not None and not store.exists(uri.key):
                raise ConfigurationError(
                    f"the source_dir parameter of {caller} is {source_dir!r}, which is not "
                    "in the local store; pass a local folder instead"
                )
            resolved_source = str(uri)
            entry_point = Path(train_script)
        else:
            folder = Path(source_dir).expanduser()
            if not folder.is_dir():
                raise ConfigurationError(
                    f"the source_dir parameter of {caller} is {str(source_dir)!r}, which is "
                    "not a folder"
                )
            folder = folder.resolve()
            script = Path(train_script)
            candidate = script if script.is_absolute() else folder / script
            entry_point = check.check_existing_file(candidate, "train_script", caller)
            if entry_point.parent != folder:
                raise ConfigurationError(
                    f"the train_script parameter of {caller} must name a file at the root of "
                    f"source_dir {str(folder)!r}; got {train_script!r} instead"
                )
            resolved_source = folder
        check.check_instance_count(instance_count, caller)
        instance = check.check_instance_type(
            instance_type,
            caller,
            default=capabilities.default_instance_type,
            local_allowed=capabilities.local_instance_types,
        )
        version = check_framework_version(
            DEFAULT_FRAMEWORK_VERSION if framework_version is None else framework_version
        )
        output = settings.output_path if settings else None
        if output and output.startswith("file://") and not capabilities.file_outputs:
            raise ConfigurationError(
                f"the output_path parameter of {caller} is {output!r}; a file:// output path "
                f"works only in local mode, in {self.mode} mode give an s3:// URI"
            )
        if version == "host" and not capabilities.host_runtime:
            raise ConfigurationError(
                f"the framework_version parameter of {caller} is 'host', which runs in "
                f"fedsage's own environment and exists only in local mode; in {self.mode} "
                "mode name a SageMaker image version such as '0.23-1'"
            )
        return TrainingRequest(
            channels=plans,
            entry_point=entry_point,
            source_dir=resolved_source,
            instance_type=instance,
            base_job_name=check_base_job_name(base_job_name),
            hyperparameters=encode_hyperparameters(hyperparameters),
            framework_version=version,
            settings=settings or EstimatorSettings(),
        )

    # -- jobs ----------------------------------------------------------------

    def describe_training_job(self, job_name: str) -> dict[str, Any]:
        """The DescribeTrainingJob response of ``job_name``."""
        return self._backend.describe_training_job(job_name)

    def attach(self, job_name: str) -> Any:
        """Get the estimator of an existing training job back, e.g. in a new notebook.

        Parameters
        ----------
        job_name : str
            The training job's name.

        Returns
        -------
        TrainingJobHandle or sagemaker.sklearn.SKLearn
            What :meth:`train_sklearn_model` returned for it (``SKLearn.attach`` in aws
            mode).

        Raises
        ------
        ConfigurationError
            If there is no such job.
        """
        check_job_name(job_name, "job_name")
        estimator = self._backend.attach(job_name)
        if estimator is not None:
            return estimator
        description = self._backend.describe_training_job(job_name)
        return TrainingJobHandle.from_description(self._backend, description)

    # -- endpoints -------------------------------------------------------------

    def _job_name_of(self, clf: Any, caller: str) -> str:
        if isinstance(clf, TrainingJobHandle):
            if clf.mode != self.mode:
                raise ConfigurationError(
                    f"the clf parameter of {caller} was trained in {clf.mode} mode, but this "
                    f"DwcSagemaker is in {self.mode} mode; use DwcSagemaker(mode={clf.mode!r})"
                )
            return clf.job_name
        if isinstance(clf, str) and clf:
            return clf
        job = getattr(clf, "latest_training_job", None)  # a SageMaker SDK estimator
        name = getattr(job, "name", None) or getattr(job, "job_name", None)
        if isinstance(name, str) and name:
            return name
        raise ConfigurationError(
            f"the clf parameter of {caller} must be what train_sklearn_model returned (or a "
            f"fitted SageMaker estimator) or a training job name; got {type(clf).__name__} "
            "instead"
        )

    def deploy(
        self,
        clf: Any,
        initial_instance_count: int,
        instance_type: str,
        endpoint_name: str | None = None,
        cleanup_resources: bool = True,
        *,
        framework_version: str | None = None,
    ) -> str:
        """Deploy a trained model to an endpoint that speaks SageMaker's protocol.

        Parameters
        ----------
        clf : TrainingJobHandle or str
            What :meth:`train_sklearn_model` returned, or a training job's name.
        initial_instance_count : int
            Instances behind the endpoint (local mode: server instances on this machine).
        instance_type : str
            ``local`` or an ``ml.*`` type such as ``ml.m5.large``.
        endpoint_name : str, optional
            The endpoint's name (SageMaker's naming rule); generated when omitted.
        cleanup_resources : bool, default=True
            Delete the training data uploaded for the job, as fedml-aws did.
        framework_version : str, optional
            Only for a model fedsage did not train (an aws job on another image): the
            scikit-learn image to serve it on.  A model is otherwise always served by
            the runtime that trained it, and a different value is an error.

        Returns
        -------
        str
            The endpoint name, for :meth:`predict`.

        Raises
        ------
        ConfigurationError
            For invalid arguments, a job that has not completed, or a name in use.
        EndpointError
            When the endpoint does not become healthy.
        """
        caller = "deploy"
        job_name = self._job_name_of(clf, caller)
        check.check_positive_int(initial_instance_count, "initial_instance_count", caller)
        instance = check.check_instance_type(
            instance_type,
            caller,
            default=None,
            local_allowed=self._backend.capabilities.local_instance_types,
        )
        if endpoint_name is not None:
            check_job_name(endpoint_name, "endpoint_name")
        check.check_bool(cleanup_resources, "cleanup_resources", caller)
        if framework_version is not None:
            from .runtimes import check_framework_version

            check_framework_version(framework_version)
        name = self._backend.deploy(
            job_name,
            initial_instance_count=initial_instance_count,
            instance_type=instance,
            endpoint_name=endpoint_name,
            framework_version=framework_version,
        )
        if cleanup_resources:
            self._backend.delete_channel_data(job_name)
        return name

    def predict(
        self,
        endpoint_name: str,
        body: Any,
        content_type: str = "",
        accept: str = "",
    ) -> str | bytes:
        """Invoke an endpoint and return its answer.

        Parameters
        ----------
        endpoint_name : str
            The endpoint to call.
        body : bytes, str or seekable file-like object
            The payload, in the format ``content_type`` names.
        content_type : str, default=''
            The request's MIME type (``text/csv``, ``application/json``,
            ``application/x-npy``); empty: the server assumes ``application/json``.
        accept : str, default=''
            The response MIME type; empty: the server's default accept.

        Returns
        -------
        str or bytes
            The response body decoded as text for textual types (as fedml-aws did),
            bytes for binary types such as ``application/x-npy``.

        Raises
        ------
        InvocationError
            When the model answers with an error status (SageMaker's ModelError).
        """
        caller = "predict"
        check_job_name(endpoint_name, "endpoint_name")
        payload = _payload_bytes(body, caller)
        answer, answer_type = self._backend.invoke_endpoint(
            endpoint_name, payload, content_type or "application/json", accept or ""
        )
        if _is_textual(answer_type):
            return answer.decode("utf-8")
        return answer

    def delete_endpoint(self, endpoint_name: str) -> None:
        """Delete an endpoint and stop everything it runs."""
        check_job_name(endpoint_name, "endpoint_name")
        self._backend.delete_endpoint(endpoint_name)


    # -- Kyma ----------------------------------------------------------------------

    def deploy_to_kyma(
        self,
        clf: Any,
        profile_name: str | None,
        initial_instance_count: int = 1,
        endpoint_name: str | None = None,
        cleanup_resources: bool = True,
    ) -> str:
        """Deploy a trained model to SAP BTP Kyma (aws mode) or to local replicas.

        Parameters
        ----------
        clf : TrainingJobHandle or str
            What :meth:`train_sklearn_model` returned, or a training job's name.
        profile_name : str or None
            The AWS profile allowed to push to ECR (required as in fedml-aws); local mode
            does not use it (pass ``None``).
        initial_instance_count : int, default=1
            Pods (aws mode) or local replicas behind one gateway (local mode).
        endpoint_name : str, optional
            Base of the deployment's name; derived from the job name when omitted.
        cleanup_resources : bool, default=True
            Delete the training data uploaded for the job, as fedml-aws did.

        Returns
        -------
        str
            The endpoint URL, for :meth:`invoke_kyma_endpoint` (``<url>`` or
            ``<url>/invocations``).

        Raises
        ------
        ConfigurationError
            For invalid arguments or a missing access rule on a cluster (see
            ``docs/kyma.md``: ``FEDSAGE_KYMA_JWT_ISSUER`` / ``FEDSAGE_KYMA_JWKS_URI``,
            or the explicit opt-in ``FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED=1``).
        DeploymentError
            When the image push, the apply or the rollout fails.
        """
        caller = "deploy_to_kyma"
        job_name = self._job_name_of(clf, caller)
        if self._backend.capabilities.kyma_needs_profile and not profile_name:
            raise ConfigurationError(
                f"the profile_name parameter of {caller} is required in {self.mode} mode: the "
                "AWS profile that may push to ECR (aws configure --profile NAME)"
            )
        check.check_positive_int(initial_instance_count, "initial_instance_count", caller)
        if endpoint_name is not None:
            check_job_name(endpoint_name, "endpoint_name")
        check.check_bool(cleanup_resources, "cleanup_resources", caller)
        url = self._backend.deploy_to_kyma(
            job_name,
            profile_name=profile_name,
            replicas=initial_instance_count,
            endpoint_name=endpoint_name,
        )
        logger.warning("Kyma endpoint for %s: %s", job_name, url)
        if cleanup_resources:
            self._backend.delete_channel_data(job_name)
        return url

    def invoke_kyma_endpoint(
        self,
        api: str,
        content_type: str,
        payload_path: str | None = None,
        payload: Any = None,
        accept: str = "application/json",
    ) -> Any:
        """Call a model deployed with :meth:`deploy_to_kyma`.

        Parameters
        ----------
        api : str
            The URL :meth:`deploy_to_kyma` returned (``/invocations`` is added when the
            URL has no path).
        content_type : {'text/csv', 'application/json', 'application/x-npy'}
            The payload's type.
        payload_path : str, optional
            A file whose bytes are sent; exactly one of ``payload_path`` and ``payload``.
        payload : str, bytes or array-like, optional
            The data itself.
        accept : str, default='application/json'
            The response type.

        Returns
        -------
        httpx.Response
            The HTTP response (``.status_code``, ``.content``, ``.json()``), also for
            error statuses, as fedml-aws returned it.
        """
        from .kyma.invoke import invoke_kyma_endpoint

        return invoke_kyma_endpoint(
            api, content_type, payload_path=payload_path, payload=payload, accept=accept
        )

def _payload_bytes(body: Any, caller: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raise ConfigurationError(
        f"the body parameter of {caller} must be bytes, str or a file-like object; "
        f"got {type(body).__name__} instead"
    )


def _is_textual(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base.endswith(("json", "xml", "jsonlines")) or (
        "charset=" in content_type.lower()
    )

