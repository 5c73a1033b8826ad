"""Estimator settings: the SageMaker estimator's keyword arguments fedsage accepts.

``train_sklearn_model`` takes them keyword-only and checks them here, the same way in
both modes.  aws mode passes them to the SDK's ``SKLearn`` estimator; local mode gives
each its local meaning where one exists (see docs/training.md) and records the rest on
the job, so ``describe()`` shows every one of them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_MAX_RUN", "EstimatorSettings", "check_settings"]

DEFAULT_MAX_RUN = 24 * 60 * 60  # the SDK's and SageMaker's default, one day
_CONTAINER_ROOT = PurePosixPath("/opt/ml")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBNET = re.compile(r"subnet-[0-9a-z]+")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-z]+")


@dataclass
class EstimatorSettings:
    """The checked estimator settings of one job (defaults as in the SDK)."""

    environment: dict[str, str] = field(default_factory=dict)
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    max_run: int = DEFAULT_MAX_RUN
    output_path: str | None = None
    code_location: str | None = None
    dependencies: list[str] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    subnets: list[str] | None = None
    security_group_ids: list[str] | None = None
    volume_kms_key: str | None = None
    output_kms_key: str | None = None
    use_spot_instances: bool = False
    max_wait: int | None = None
    checkpoint_s3_uri: str | None = None
    checkpoint_local_path: str | None = None
    enable_network_isolation: bool = False
    volume_size: int = 30

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EstimatorSettings:
        return cls(**(data or {}))

    def sdk_kwargs(self) -> dict[str, Any]:
        """The arguments for the SDK's estimator (those that differ from its defaults)."""
        defaults = EstimatorSettings()
        return {
            name: value
            for name, value in self.to_dict().items()
            if value != getattr(defaults, name) and value not in (None, [], {})
        }

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob fields these settings fill (beside the defaults)."""
        out: dict[str, Any] = {}
        if self.environment:
            out["Environment"] = dict(self.environment)
        if self.subnets or self.security_group_ids:
            out["VpcConfig"] = {
                "Subnets": list(self.subnets or []),
                "SecurityGroupIds": list(self.security_group_ids or []),
            }
        if self.checkpoint_s3_uri:
            out["CheckpointConfig"] = {
                "S3Uri": self.checkpoint_s3_uri,
                "LocalPath": self.checkpoint_local_path or "/opt/ml/checkpoints",
            }
        out["EnableNetworkIsolation"] = self.enable_network_isolation
        out["EnableManagedSpotTraining"] = self.use_spot_instances
        return out


def _fail(param: str, caller: str, rule: str, value: Any, fix: str = "") -> ConfigurationError:
    message = f"the {param} parameter of {caller} must be {rule}; got {value!r} instead"
    return ConfigurationError(f"{message}. {fix}" if fix else message)


def _positive_int(value: Any, param: str, caller: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(param, caller, "an int >= 1 (seconds or GB)", value)
    return value


def _optional_str(value: Any, param: str, caller: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(param, caller, "a non-empty str or None", value)
    return value


def _uri(value: Any, param: str, caller: str, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(schemes) or value in schemes:
        raise _fail(param, caller, f"a URI starting with {' or '.join(schemes)}", value)
    return value.rstrip("/") if value.startswith("s3://") else value


def _ids(value: Any, param: str, caller: str, pattern: re.Pattern[str]) -> list[str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value)
    ):
        raise _fail(param, caller, f"a non-empty list of ids like {pattern.pattern!r}", value)
    return list(value)


def _environment(value: Any, caller: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and _ENV_NAME.fullmatch(k) and isinstance(v, str)
        for k, v in value.items()
    ):
        raise _fail(
            "environment", caller, "a dict of variable names to str values", value,
            "names are letters, digits and '_', not starting with a digit",
        )
    return dict(value)


def _metric_definitions(value: Any, caller: str) -> list[dict[str, str]]:
    if value is None:
        return []
    rule = "a list of {'Name': str, 'Regex': str} dicts"
    if not isinstance(value, (list, tuple)):
        raise _fail("metric_definitions", caller, rule, value)
    out = []
    for item in value:
        if (
            not isinstance(item, dict)
            or set(item) != {"Name", "Regex"}
            or not all(isinstance(v, str) and v for v in item.values())
        ):
            raise _fail("metric_definitions", caller, rule, item)
        try:
            compiled = re.compile(item["Regex"])
        except re.error as exc:
            raise _fail(
                "metric_definitions", caller, "valid regular expressions", item["Regex"], str(exc)
            ) from None
        if compiled.groups < 1:
            raise _fail(
                "metric_definitions", caller, "regexes with a group that captures the value",
                item["Regex"], "for example 'accuracy=([0-9.]+)'",
            )
        out.append({"Name": item["Name"], "Regex": item["Regex"]})
    return out


def _tags(value: Any, caller: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if isinstance(value, dict):  # the SDK also takes {"key": "value"}
        value = [{"Key": k, "Value": v} for k, v in value.items()]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(t, dict)
        and set(t) == {"Key", "Value"}
        and all(isinstance(v, str) for v in t.values())
        for t in value
    ):
        raise _fail("tags", caller, "a list of {'Key': str, 'Value': str} dicts", value)
    return [dict(t) for t in value]


def _dependencies(value: Any, caller: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise _fail("dependencies", caller, "a list of paths to files or folders", value)
    out = []
    for item in value:
        path = Path(str(item)).expanduser()
        if not isinstance(item, (str, Path)) or not path.exists():
            raise _fail(
                "dependencies", caller, "a list of existing files or folders", item,
                f"relative paths start at {str(Path.cwd())!r}",
            )
        out.append(str(path.resolve()))
    return out


def check_settings(caller: str, **values: Any) -> EstimatorSettings:
    """Check the estimator settings ``train_sklearn_model`` was given.

    Parameters
    ----------
    caller : str
        Named in error messages.
    **values
        The keyword arguments, by their SDK names (``None`` means "not given").

    Returns
    -------
    EstimatorSettings

    Raises
    ------
    ConfigurationError
        Naming the parameter, for any value the SDK would refuse.
    """
    max_run = values.get("max_run")
    max_run = DEFAULT_MAX_RUN if max_run is None else _positive_int(max_run, "max_run", caller)
    spot = values.get("use_spot_instances")
    spot = False if spot is None else spot
    if not isinstance(spot, bool):
        raise _fail("use_spot_instances", caller, "a bool", spot)
    max_wait = values.get("max_wait")
    if max_wait is not None:
        max_wait = _positive_int(max_wait, "max_wait", caller)
    if spot and max_wait is None:
        raise _fail(
            "max_wait", caller, "set when use_spot_instances=True", None,
            "give the seconds to wait for spot capacity plus training, at least max_run",
        )
    if max_wait is not None and max_wait < max_run:
        raise _fail("max_wait", caller, f"at least max_run ({max_run})", max_wait)
    subnets = _ids(values.get("subnets"), "subnets", caller, _SUBNET)
    groups = _ids(values.get("security_group_ids"), "security_group_ids", caller, _SECURITY_GROUP)
    if (subnets is None) != (groups is None):
        raise _fail(
            "subnets" if subnets is None else "security_group_ids", caller,
            "given together with the other (a VPC needs both)", None,
        )
    checkpoint_local = _optional_str(
        values.get("checkpoint_local_path"), "checkpoint_local_path", caller
    )
    if checkpoint_local is not None and not PurePosixPath(checkpoint_local).is_absolute():
        raise _fail("checkpoint_local_path", caller, "an absolute path", checkpoint_local)
    isolation = values.get("enable_network_isolation")
    isolation = False if isolation is None else isolation
    if not isinstance(isolation, bool):
        raise _fail("enable_network_isolation", caller, "a bool", isolation)
    volume = values.get("volume_size")
    return EstimatorSettings(
        environment=_environment(values.get("environment"), caller),
        metric_definitions=_metric_definitions(values.get("metric_definitions"), caller),
        max_run=max_run,
        output_path=_uri(values.get("output_path"), "output_path", caller, ("s3://", "file://")),
        code_location=_uri(values.get("code_location"), "code_location", caller, ("s3://",)),
        dependencies=_dependencies(values.get("dependencies"), caller),
        tags=_tags(values.get("tags"), caller),
        subnets=subnets,
        security_group_ids=groups,
        volume_kms_key=_optional_str(values.get("volume_kms_key"), "volume_kms_key", caller),
        output_kms_key=_optional_str(values.get("output_kms_key"), "output_kms_key", caller),
        use_spot_instances=spot,
        max_wait=max_wait,
        checkpoint_s3_uri=_uri(
            values.get("checkpoint_s3_uri"), "checkpoint_s3_uri", caller, ("s3://",)
        ),
        checkpoint_local_path=checkpoint_local,
        enable_network_isolation=isolation,
        volume_size=30 if volume is None else _positive_int(volume, "volume_size", caller),
    )


def local_checkpoint_dir(settings: EstimatorSettings) -> PurePosixPath | None:
    """Where a local job's checkpoints live inside ``/opt/ml`` (None: no checkpoints).

    Raises
    ------
    ConfigurationError
        If ``checkpoint_local_path`` is outside ``/opt/ml``: a local job's private
        namespace only maps ``/opt/ml``.
    """
    if not settings.checkpoint_s3_uri:
        return None
    path = PurePosixPath(settings.checkpoint_local_path or "/opt/ml/checkpoints")
    if path != _CONTAINER_ROOT and _CONTAINER_ROOT not in path.parents:
        raise ConfigurationError(
            f"the checkpoint_local_path parameter is {str(path)!r}; in local mode it must be "
            "a folder under /opt/ml (default /opt/ml/checkpoints), which the job's private "
            "namespace maps to its own folder"
        )
    return path
