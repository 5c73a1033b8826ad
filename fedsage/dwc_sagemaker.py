"""``DwcSagemaker``: fedml-aws's public API, in local or AWS mode.

This module only checks arguments, applies fedml-aws's defaults and picks a backend;
the backends (:mod:`fedsage.backends`) do the work.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _validation as check
from . import backends
from ._log import announce_once
from .backends import MODE_ENV, TrainingRequest
from .backends.base import StartedJob
from .channels import ChannelPlan, check_content_type, plan_channel
from .errors import ConfigurationError
from .estimator import TrainingJobHandle, check_deploy
from .scoring.engine import DEFAULT_BATCH_ROWS
from .storage import check_bucket_name, check_prefix, parse_s3_uri
from .training.contract import encode_hyperparameters
from .training.settings import EstimatorSettings, check_settings
from .training.spec import check_base_job_name, check_job_name

if TYPE_CHECKING:
    from .scoring.engine import ScoringSummary

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
        framework: str = "scikit-learn",
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
        framework : {'scikit-learn', 'xgboost'}, default='scikit-learn'
            ``'xgboost'`` runs the script on SageMaker's XGBoost image (the SDK's
            ``sagemaker.xgboost.XGBoost`` estimator) of ``framework_version``
            (``'1.7-1'``, ``'3.0-5'``); docs/xgboost.md.

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
            framework=framework,
        )
        check.check_bool(wait, "wait", caller)
        logs = check.check_logs(logs, caller)
        check.check_bool(download_output, "download_output", caller)

        started, handle = self._start(request)
        if wait or download_output:
            self._backend.wait_training_job(started.name, logs=logs)
        if download_output:
            dest = Path.cwd() / started.name / "output"
            if self._backend.download_output(started.name, dest) is None:
                logger.info("job %s wrote no output data", started.name)
        return handle

    def train_sagemaker_model(
        self,
        train_data: Any,
        framework: str,
        framework_version: str = "latest",
        train_content_type: str = "csv",
        test_content_type: str = "csv",
        instance_count: int = 1,
        instance_type: str | None = None,
        base_job_name: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        test_data: Any = None,
        s3distributionTypeTrain: str | None = None,
        s3distributionTypeTest: str | None = None,
        *,
        channels: dict[str, Any] | None = None,
        wait: bool = True,
        logs: str | bool = "All",
        **estimator_settings: Any,
    ) -> Any:
        """Train one of SageMaker's built-in algorithms (no script), as fedml-aws does.

        Parameters
        ----------
        train_data : DataFrame, DbConnection table/query, str, Path or BytesIO
            The ``train`` channel; a DataFrame is written as header-less CSV, an
            ``io.BytesIO`` as RecordIO-protobuf (``train.protobuf``).
        framework : str
            The algorithm, as ``sagemaker.image_uris.retrieve`` names it (``'xgboost'``,
            ``'linear-learner'``, ``'kmeans'``...).  Local mode runs ``'xgboost'``; aws
            mode runs every built-in algorithm.
        framework_version : str, default='latest'
            The algorithm image's version.  ``'latest'`` is what fedml-aws passes: in aws
            mode the SDK's meaning (for XGBoost, the deprecated 0.72 image); local mode
            runs it on the newest local XGBoost image (``'3.0-5'``) and says so.
        train_content_type, test_content_type : str, default='csv'
            The channels' content types (``'csv'``, ``'libsvm'``, ``'text/csv'``,
            ``'application/x-parquet'``, ``'application/x-recordio-protobuf'``...); an
            ``io.BytesIO`` input with the default is sent as RecordIO-protobuf.
        instance_count : int, default=1
            Instances; built-in algorithms train distributed in aws mode, local mode
            runs one.
        instance_type : str, optional
            ``local`` or an ``ml.*`` type (required in aws mode).
        base_job_name : str, optional
            Prefix of the job name (default: the algorithm's name).
        hyperparameters : dict, optional
            Sent as strings, as the SDK's ``Estimator`` sends them (``num_round`` is
            required by XGBoost).
        test_data : same as ``train_data``, optional
            The ``test`` channel (XGBoost refuses one, as on SageMaker: pass a
            ``validation`` channel through ``channels`` instead).
        s3distributionTypeTrain, s3distributionTypeTest : {'FullyReplicated', \
'ShardedByS3Key'}, optional
            How the channel is spread over instances (default ``FullyReplicated``).
        channels : dict, optional
            More channels, name -> data (``{'validation': frame}``).
        wait : bool, default=True
            Block until the job ends, as fedml-aws's ``fit`` does.
        logs : {'All', 'None', 'Training', 'Rules'} or bool, default='All'
            Which logs to print while waiting.
        **estimator_settings
            The estimator settings :meth:`train_sklearn_model` takes (``max_run``,
            ``output_path``, ``metric_definitions``...).

        Returns
        -------
        TrainingJobHandle or sagemaker.estimator.Estimator
            aws mode: the SDK's fitted ``Estimator``, as fedml-aws returns it; local
            mode: an estimator-like handle.  Both go to :meth:`deploy`,
            :meth:`deploy_to_kyma` and batch scoring.

        Raises
        ------
        ConfigurationError
            For an invalid argument, or an algorithm that does not run in this mode.
        TrainingError
            When waiting and the job fails (the image's FailureReason).
        """
        caller = "train_sagemaker_model"
        request = self._algorithm_request(
            caller,
            train_data=train_data,
            test_data=test_data,
            channels=channels,
            framework=framework,
            framework_version=framework_version,
            train_content_type=train_content_type,
            test_content_type=test_content_type,
            instance_count=instance_count,
            instance_type=instance_type,
            base_job_name=base_job_name,
            hyperparameters=hyperparameters,
            distributions=(s3distributionTypeTrain, s3distributionTypeTest),
            settings=self._settings(caller, estimator_settings),
        )
        check.check_bool(wait, "wait", caller)
        logs = check.check_logs(logs, caller)
        started, handle = self._start(request)
        if wait:
            self._backend.wait_training_job(started.name, logs=logs)
        return handle

    def _start(self, request: TrainingRequest) -> tuple[StartedJob, Any]:
        """Start the job; return it and what the caller hands out (the backend's own
        estimator, else a local handle)."""
        started = self._backend.start_training_job(request)
        handle = started.estimator or TrainingJobHandle(
            self._backend,
            started.name,
            base_job_name=request.base_job_name,
            framework_version=request.framework_version,
            entry_point=request.program,
            source_dir=str(request.source_dir) if request.source_dir else None,
            instance_type=request.instance_type,
            output_path=started.output_path,
            hyperparameters=started.hyperparameters,
        )
        return started, handle

    def _settings(self, caller: str, given: dict[str, Any]) -> EstimatorSettings:
        known = set(EstimatorSettings.__dataclass_fields__)
        unknown = sorted(set(given) - known)
        if unknown:
            raise TypeError(
                f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}; the "
                f"estimator settings it takes are {', '.join(sorted(known))}"
            )
        return check_settings(caller, **given)

    def _algorithm_request(
        self,
        caller: str,
        *,
        train_data: Any,
        test_data: Any,
        channels: dict[str, Any] | None,
        framework: Any,
        framework_version: Any,
        train_content_type: Any,
        test_content_type: Any,
        instance_count: Any,
        instance_type: str | None,
        base_job_name: str | None,
        hyperparameters: dict[str, Any] | None,
        distributions: tuple[Any, Any],
        settings: EstimatorSettings,
    ) -> TrainingRequest:
        from .builtin import xgboost as builtin_xgb

        capabilities = self._backend.capabilities
        if not isinstance(framework, str) or not framework:
            raise ConfigurationError(
                f"the framework parameter of {caller} must be a built-in algorithm's name "
                f"such as 'xgboost'; got {framework!r} instead"
            )
        local = capabilities.builtin_algorithms
        if local is not None and framework not in local:
            raise ConfigurationError(
                f"the framework parameter of {caller} is {framework!r}, which is a closed "
                f"SageMaker image: in {self.mode} mode only {', '.join(local)} runs; aws mode "
                "(FEDSAGE_MODE=aws or DwcSagemaker(mode='aws')) runs every built-in algorithm"
            )
        if not isinstance(framework_version, str) or not framework_version:
            raise ConfigurationError(
                f"the framework_version parameter of {caller} must be a str such as '1.7-1'; "
                f"got {framework_version!r} instead"
            )
        if framework_version == "latest":
            if local is not None:
                framework_version = builtin_xgb.VERSIONS[-1]
                announce_once(
                    "xgboost-latest",
                    f"framework_version='latest' is SageMaker's deprecated XGBoost 0.72 image "
                    f"in aws mode; {self.mode} mode runs the newest local image, "
                    f"{framework_version}. Pin framework_version={framework_version!r} for the "
                    "same image in both modes",
                )
            else:
                announce_once(
                    "xgboost-latest-aws",
                    f"framework_version='latest' gives the oldest {framework} image the SDK "
                    "knows (for XGBoost the deprecated 0.72 one); pin a version such as '1.7-1'",
                )
        if local is not None and framework == builtin_xgb.FRAMEWORK:
            framework_version = builtin_xgb.check_version(framework_version)
        check.check_positive_int(instance_count, "instance_count", caller)
        if instance_count > 1 and not capabilities.distributed_training:
            raise ConfigurationError(
                f"the instance_count parameter of {caller} is {instance_count}; {self.mode} "
                "mode trains on one instance (this machine). Use instance_count=1, or aws "
                "mode to spread the data over several instances"
            )
        named: list[tuple[str, Any, str | None, str, str | None]] = []
        for name, data, kind, param, distribution in (
            ("train", train_data, train_content_type, "train_data", distributions[0]),
            ("test", test_data, test_content_type, "test_data", distributions[1]),
        ):
            if data is None and name == "test":
                continue
            kind = check_content_type(kind)
            if isinstance(data, io.BytesIO) and kind == "csv":
                kind = "application/x-recordio-protobuf"  # what such a buffer holds
            dist_param = "s3distributionTypeTrain" if name == "train" else "s3distributionTypeTest"
            if distribution not in (None, "FullyReplicated", "ShardedByS3Key"):
                raise ConfigurationError(
                    f"the {dist_param} parameter of {caller} must be 'FullyReplicated' or "
                    f"'ShardedByS3Key'; got {distribution!r} instead"
                )
            named.append((name, data, kind, param, distribution))
        plans = self._plan_channels(caller, named, channels, check_content_type(train_content_type))
        self._check_output(caller, settings)
        return TrainingRequest(
            channels=plans,
            entry_point=None,
            source_dir=None,
            instance_type=self._instance_type(instance_type, caller),
            base_job_name=check_base_job_name(base_job_name or framework),
            hyperparameters=builtin_xgb.encode_hyperparameters(hyperparameters),
            framework_version=framework_version,
            settings=settings,
            framework=framework,
            algorithm=framework,
            instance_count=instance_count,
        )

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
        framework: str = "scikit-learn",
    ) -> TrainingRequest:
        from .runtimes import DEFAULT_FRAMEWORK_VERSION, check_framework, check_framework_version

        content_type = check_content_type(content_type)
        framework = check_framework(framework)
        named: list[tuple[str, Any, str | None, str, str | None]] = [
            ("train", train_data, content_type, "train_data", None)
        ]
        if test_data is not None:
            named.append(("test", test_data, content_type, "test_data", None))
        plans = self._plan_channels(caller, named, channels, content_type)
        entry_point, resolved_source = self._entry_point(caller, train_script, source_dir)
        check.check_instance_count(instance_count, caller)
        instance = self._instance_type(instance_type, caller)
        if framework_version is None and framework != "scikit-learn":
            raise ConfigurationError(
                f"the framework_version parameter of {caller} is required with "
                f"framework={framework!r}: the SageMaker {framework} image version, such as "
                "'1.7-1' or '3.0-5'"
            )
        version = check_framework_version(
            DEFAULT_FRAMEWORK_VERSION if framework_version is None else framework_version,
            framework=framework,
        )
        settings = settings or EstimatorSettings()
        self._check_output(caller, settings)
        if version == "host" and not self._backend.capabilities.host_runtime:
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
            settings=settings,
            framework=framework,
        )

    def _plan_channels(
        self,
        caller: str,
        named: Sequence[tuple[str, Any, str | None, str, str | None]],
        channels: dict[str, Any] | None,
        content_type: str | None,
    ) -> list[ChannelPlan]:
        """Check every input (name, data, content type, parameter, distribution)."""
        named = list(named)
        if named[0][1] is None:
            raise ConfigurationError(
                f"the train_data parameter of {caller} is required: pass a DataFrame, a "
                "DbConnection table or query, a path to a file or folder, an s3:// URI or "
                "an io.BytesIO"
            )
        if channels is not None:
            if not isinstance(channels, dict):
                raise ConfigurationError(
                    f"the channels parameter of {caller} must be a dict of channel name -> "
                    f"data; got {type(channels).__name__} instead"
                )
            taken = {name for name, *_ in named}
            for name, data in channels.items():
                if name in taken:
                    raise ConfigurationError(
                        f"the channels parameter of {caller} names the channel {name!r}, which "
                        f"train_data/test_data already fill; pick another name"
                    )
                named.append((name, data, content_type, f"channels[{name!r}]", None))
        store = self._backend.store if self._backend.capabilities.store_lists_cheaply else None
        plans = []
        for name, data, kind, param, distribution in named:
            plan = plan_channel(name, data, kind, param=param, store=store)
            plans.append(plan if distribution is None else replace(plan, distribution=distribution))
        return plans

    def _entry_point(
        self, caller: str, train_script: str | None, source_dir: str | None
    ) -> tuple[Path, Path | str | None]:
        """The checked entry script, and the source folder (or its s3:// archive)."""
        store = self._backend.store if self._backend.capabilities.store_lists_cheaply else None
        if train_script is None:
            raise ConfigurationError(
                f"the train_script parameter of {caller} is required: the path of the "
                "training script (the entry point)"
            )
        if source_dir is None:
            return check.check_existing_file(train_script, "train_script", caller), None
        if isinstance(source_dir, str) and source_dir.startswith("s3://"):
            uri = parse_s3_uri(source_dir, "source_dir")
            if store is not None and not store.exists(uri.key):
                raise ConfigurationError(
                    f"the source_dir parameter of {caller} is {source_dir!r}, which is not "
                    "in the local store; pass a local folder instead"
                )
            return Path(train_script), str(uri)
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
        return entry_point, folder

    def _instance_type(self, instance_type: str | None, caller: str) -> str:
        capabilities = self._backend.capabilities
        return check.check_instance_type(
            instance_type,
            caller,
            default=capabilities.default_instance_type,
            local_allowed=capabilities.local_instance_types,
        )

    def _check_output(self, caller: str, settings: EstimatorSettings) -> None:
        output = settings.output_path
        if output and output.startswith("file://") and not self._backend.capabilities.file_outputs:
            raise ConfigurationError(
                f"the output_path parameter of {caller} is {output!r}; a file:// output path "
                f"works only in local mode, in {self.mode} mode give an s3:// URI"
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
        instance = check_deploy(
            self._backend, initial_instance_count, instance_type, endpoint_name, caller
        )
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

    def batch_transform(
        self,
        model: Any,
        data: Any,
        target: Any,
        *,
        keep_columns: str | Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        if_exists: str = "fail",
        workers: int | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_payload: float = 6,
        prediction_column: str = "prediction",
        connection: Any = None,
        progress: bool = True,
        instance_count: int = 1,
        instance_type: str | None = None,
    ) -> ScoringSummary:
        """Score a table, query, DataFrame or file and write the predictions to a table or file.

        The local counterpart of SageMaker Batch Transform, from the warehouse to the
        warehouse: the input is streamed in Arrow batches, scored by the model's own
        ``model_fn``/``input_fn``/``predict_fn``/``output_fn`` in the runtime that trained
        it (the same server an endpoint runs, started for this call and deleted after it),
        and the keep columns plus predictions are written in one commit at the end.  A
        failure leaves the target as it was.

        Parameters
        ----------
        model : TrainingJobHandle, str or SageMaker estimator
            What :meth:`train_sklearn_model` returned, a training job's name, or the name
            of a running endpoint (which then does the scoring).
        data : Table, Query, str, pathlib.Path or pandas.DataFrame
            ``db.table(name)``, ``db.query(sql)``, a table/view name or SELECT with
            ``connection``, a DataFrame, or a ``.csv`` (with a header row) / ``.parquet`` file.
        target : str, Table or pathlib.Path
            A table name (on ``connection``, or on the input's connection), ``db.table(name)``,
            or a ``.csv`` / ``.parquet`` path.
        keep_columns : list of str, optional
            Input columns written beside the predictions (ids, keys); never sent to the model.
        features : list of str, optional
            The columns sent to the model, in its order; default every column not kept.
        content_type : {'text/csv', 'application/json', 'application/x-npy'}, optional
            What the model's ``input_fn`` decodes (CSV without a header).  Default: chosen
            for the model.  ``application/x-npy`` holding exactly the array ``text/csv``
            decodes to (float32, as the image casts it) when the model keeps the image's
            default ``input_fn`` (its entry point defines neither ``input_fn`` nor
            ``transform_fn``, read from its source) and every feature is an integer,
            floating point or decimal column, since parsing CSV text is most of the model
            server's work; ``text/csv`` otherwise, and always in aws mode.  The summary's
            ``content_type`` and ``content_type_reason`` say which and why.
        accept : str, optional
            What to ask the model to answer (the same three types); default none, so the
            model answers in its default type (SageMaker's: JSON), as an endpoint does.
        if_exists : {'fail', 'replace', 'append'}, default='fail'
            What to do when the target exists.
        workers : int, optional
            Model server workers, each keeping the model loaded; default one per core
            (ignored when ``model`` is an endpoint, which has its own).
        batch_rows : int, default=50000
            Rows per request (fewer when a request would exceed ``max_payload``).
        max_payload : float, default=6
            Largest request in MB (SageMaker's ``MaxPayloadInMB``).
        prediction_column : str, default='prediction'
            Name of the prediction column; several outputs become ``<name>_0``, ``<name>_1``...
        connection : DbConnection, optional
            For ``data`` or ``target`` given as names.
        progress : bool, default=True
            Show rows scored and rows per second.
        instance_count : int, default=1
            aws mode: instances of the Batch Transform job (they share the input's parts).
            Local mode scores on this machine with ``workers``.
        instance_type : str, optional
            aws mode: the ``ml.*`` type of the Batch Transform job (required there).

        Returns
        -------
        ScoringSummary
            ``rows_in``, ``rows_written``, ``seconds``, ``target``, ``columns``,
            ``content_type`` and ``content_type_reason``.

        Raises
        ------
        ConfigurationError
            For an invalid argument, an unknown model, columns the input does not have, or a
            target that exists with ``if_exists='fail'`` (before anything is written).
        DataError
            If the input cannot be read or the target cannot be written.
        ScoringError
            If the model cannot score a batch (the rows and the model's message are named),
            its server fails, or the row counts differ; the target is left as it was.

        Examples
        --------
        >>> db = DbConnection()                                             # doctest: +SKIP
        >>> dwc.batch_transform(clf, db.table("CUSTOMERS"), "CHURN_SCORES",
        ...                     keep_columns=["ID"], if_exists="replace")  # doctest: +SKIP
        """
        import functools

        from .scoring.engine import PendingRequest
        from .scoring.request import check_arguments, checked_target, opened_request

        caller = "batch_transform"
        job_or_endpoint = self._job_name_of(model, caller).strip()
        plan = check_arguments(
            caller,
            keep_columns=keep_columns,
            features=features,
            content_type=content_type,
            accept=accept,
            if_exists=if_exists,
            workers=workers,
            batch_rows=batch_rows,
            max_payload=max_payload,
            prediction_column=prediction_column,
            connection=connection,
            progress=progress,
        )
        check.check_positive_int(instance_count, "instance_count", caller)
        instance = self._instance_type(instance_type, caller)
        where = checked_target(data, target, plan, connection=connection)
        opener = functools.partial(
            opened_request,
            data,
            where,
            plan,
            connection=connection,
            workers=workers,
            progress=progress,
            instance_count=instance_count,
            instance_type=instance,
        )
        return self._backend.batch_transform(job_or_endpoint, PendingRequest(plan, workers, opener))


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

