"""The SageMaker scikit-learn training contract, written once.

Pure functions of an explicit root folder and job description: the ``/opt/ml`` layout,
the config files, the ``SM_*`` environment, and hyperparameter encoding exactly as the
SageMaker Python SDK (v2) and the sagemaker-training toolkit do it.  Every backend
uses these; docs/training.md names the source of each rule.  Nothing here touches the
file system except :func:`write_config_files`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "CONTAINER_ROOT",
    "RESERVED_HYPERPARAMETERS",
    "Layout",
    "decode_hyperparameters",
    "encode_hyperparameters",
    "failure_text",
    "host_env",
    "input_data_config",
    "mask_secrets",
    "resource_config",
    "split_hyperparameters",
    "to_cmd_args",
    "training_env",
    "write_config_files",
]

CONTAINER_ROOT = PurePosixPath("/opt/ml")
TRAINING_MODULE = "sagemaker_sklearn_container.training:main"
CURRENT_HOST = "algo-1"
GROUP_NAME = "homogeneousCluster"
LOG_LEVEL = 20

RESERVED_HYPERPARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
_MAX_HYPERPARAMETERS = 100
_MAX_KEY = 256
_MAX_VALUE = 2500


@dataclass(frozen=True)
class Layout:
    """The ``/opt/ml`` tree under ``root`` (``/opt/ml`` itself, or a job folder)."""

    root: PurePosixPath | Path

    @property
    def input_dir(self) -> Any:
        return self.root / "input"

    @property
    def config_dir(self) -> Any:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Any:
        return self.root / "input" / "data"

    @property
    def code_dir(self) -> Any:
        return self.root / "code"

    @property
    def model_dir(self) -> Any:
        return self.root / "model"

    @property
    def output_dir(self) -> Any:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Any:
        return self.root / "output" / "data"

    @property
    def intermediate_dir(self) -> Any:
        return self.root / "output" / "intermediate"

    @property
    def failure_file(self) -> Any:
        return self.root / "output" / "failure"

    @property
    def success_file(self) -> Any:
        return self.root / "output" / "success"

    def channel_dir(self, channel: str) -> Any:
        return self.data_dir / channel

    def create(self, channels: list[str]) -> None:
        """Create every folder of the tree (only for a real :class:`Path` root)."""
        for path in (
            self.config_dir,
            self.code_dir,
            self.model_dir,
            self.output_data_dir,
            self.intermediate_dir,
            *(self.channel_dir(c) for c in channels),
        ):
            Path(path).mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------------
# Hyperparameters


def encode_hyperparameters(
    hyperparameters: Mapping[Any, Any] | None, *, plain: bool = False
) -> dict[str, str]:
    """Encode hyperparameters as the SDK does: ``str(key)`` -> ``json.dumps(value)``.

    Parameters
    ----------
    hyperparameters : mapping or None
        The caller's hyperparameters.
    plain : bool, default=False
        ``str(value)`` instead of JSON, as the SDK's generic ``Estimator`` sends them to
        built-in algorithms (which read raw strings such as ``reg:squarederror``).

    Raises
    ------
    ConfigurationError
        If a value cannot be JSON-encoded, or a SageMaker API limit is exceeded
        (100 entries, keys up to 256 characters, values up to 2500).
    """
    if hyperparameters is None:
        return {}
    if not isinstance(hyperparameters, Mapping):
        raise ConfigurationError(
            "the hyperparameters parameter must be a dict; "
            f"got {type(hyperparameters).__name__} instead"
        )
    encoded: dict[str, str] = {}
    for key, value in hyperparameters.items():
        name = str(key)
        try:
            text = str(value) if plain else json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"the hyperparameters parameter has a value that is not JSON-serialisable: "
                f"{name}={value!r} ({type(value).__name__}); pass str, int, float, bool, "
                "None, or lists and dicts of them"
            ) from exc
        if len(name) > _MAX_KEY or len(text) > _MAX_VALUE:
            raise ConfigurationError(
                f"the hyperparameters parameter entry {name[:40]!r} is too long: SageMaker "
                f"allows keys up to {_MAX_KEY} and encoded values up to {_MAX_VALUE} characters"
            )
        encoded[name] = text
    if len(encoded) > _MAX_HYPERPARAMETERS:
        raise ConfigurationError(
            f"the hyperparameters parameter has {len(encoded)} entries; SageMaker allows at "
            f"most {_MAX_HYPERPARAMETERS}"
        )
    return encoded


def reserved_hyperparameters(
    *, program: str, submit_directory: str, job_name: str, region: str
) -> dict[str, str]:
    """The ``sagemaker_*`` entries the SDK adds, JSON-encoded like the user's."""
    return {
        "sagemaker_program": json.dumps(program),
        "sagemaker_submit_directory": json.dumps(submit_directory),
        "sagemaker_container_log_level": json.dumps(LOG_LEVEL),
        "sagemaker_job_name": json.dumps(job_name),
        "sagemaker_region": json.dumps(region),
    }


def decode_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """Decode ``hyperparameters.json`` as the toolkit does: JSON, else the raw string."""
    decoded: dict[str, Any] = {}
    for key, value in encoded.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def split_hyperparameters(
    decoded: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split into (user, reserved, additional framework parameters) like the toolkit."""
    user, reserved, framework = {}, {}, {}
    for key, value in decoded.items():
        if key in RESERVED_HYPERPARAMETERS:
            reserved[key] = value
        elif key.startswith("sagemaker_"):
            framework[key] = value
        else:
            user[key] = value
    return user, reserved, framework


def _arg_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def to_cmd_args(user_hyperparameters: Mapping[str, Any]) -> list[str]:
    """The script's argv after its name: sorted keys, ``-k`` for one-character names.

    Values are rendered with Python's ``str()`` (``True``, ``[1, 2]``) and dicts as
    ``a=1,b=x``, exactly as the toolkit renders them; one value is one argv item.
    """
    args: list[str] = []
    for key in sorted(user_hyperparameters):
        flag = f"-{key}" if len(key) == 1 else f"--{key}"
        args += [flag, _arg_value(user_hyperparameters[key])]
    return args


_SECRET_NAME = re.compile(r"password|passwd|secret|token|key", re.IGNORECASE)
MASK = "****"


def mask_secrets(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose values are hidden where the name says secret (password, token, key...).

    For what is shown (job logs, failure reasons, the command line); the script itself
    always gets the real values.
    """
    return {
        name: MASK if _SECRET_NAME.search(str(name)) else value
        for name, value in hyperparameters.items()
    }


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# ---------------------------------------------------------------------------
# Config files


def input_data_config(channels: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: one entry per channel, ``ContentType`` when known."""
    config: dict[str, dict[str, str]] = {}
    for name in sorted(channels):
        entry = {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        content_type = channels[name]
        if content_type:
            entry = {"ContentType": content_type, **entry}
        config[name] = entry
    return config


def resource_config(instance_type: str) -> dict[str, Any]:
    """``resourceconfig.json`` for the single host a scikit-learn job runs on."""
    hosts = [CURRENT_HOST]
    return {
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": GROUP_NAME,
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": GROUP_NAME, "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }


def write_config_files(
    layout: Layout,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, str | None],
    instance_type: str,
) -> None:
    """Write ``hyperparameters.json``, ``inputdataconfig.json`` and ``resourceconfig.json``."""
    config = Path(layout.config_dir)
    config.mkdir(parents=True, exist_ok=True)
    files = {
        "hyperparameters.json": dict(hyperparameters),
        "inputdataconfig.json": input_data_config(channels),
        "resourceconfig.json": resource_config(instance_type),
    }
    for name, content in files.items():
        (config / name).write_text(json.dumps(content), encoding="utf-8")


# ---------------------------------------------------------------------------
# Environment

# What a job takes from the machine that starts it: locale, time zone, home, temporary
# folder and proxies.  Everything else (cloud credentials, database passwords,
# FEDSAGE_*) stays out, so a script that works here does not lean on the notebook.
_PASSED_THROUGH = frozenset(
    {
        "LANG", "LANGUAGE", "TZ", "HOME", "TMPDIR",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    }
)
_SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def host_env(parent: Mapping[str, str], python: Path) -> dict[str, str]:
    """The part of a job's environment that comes from the machine, not the image.

    Parameters
    ----------
    parent : mapping
        The starting process's environment.
    python : pathlib.Path
        The job's interpreter; its folder leads ``PATH``, as the image's Python does.
    """
    env = {k: v for k, v in parent.items() if k in _PASSED_THROUGH or k.startswith("LC_")}
    env["PATH"] = os.pathsep.join([str(Path(python).parent), *_SYSTEM_PATH])
    return env


def training_env(
    layout: Layout,
    *,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, str | None],
    instance_type: str,
    job_name: str,
    region: str,
    num_cpus: int | None = None,
    toolkit_48: bool = True,
) -> dict[str, str]:
    """Every variable a script sees in the scikit-learn container, for ``layout``.

    Parameters
    ----------
    layout : Layout
        The tree as the script sees it (``/opt/ml`` when a private mount namespace
        is available, otherwise the job folder).
    hyperparameters : mapping
        ``hyperparameters.json`` content (JSON-encoded values, reserved entries included).
    channels : mapping
        Channel name -> content type (or ``None``).
    instance_type : str
        ``local`` or an ``ml.*`` name.
    job_name, region : str
        The training job's name and region.
    num_cpus : int, optional
        Defaults to :func:`os.cpu_count`.
    toolkit_48 : bool
        Include the variables sagemaker-training 4.8 added (images 1.2-1 and later).

    Returns
    -------
    dict
        Variable name -> value, all strings.
    """
    decoded = decode_hyperparameters(hyperparameters)
    user, reserved, framework = split_hyperparameters(decoded)
    resources = resource_config(instance_type)
    data_config = input_data_config(channels)
    program = str(reserved.get("sagemaker_program", ""))
    module_name = program[:-3] if program.endswith(".py") else program
    hosts = resources["hosts"]
    channel_dirs = {name: str(layout.channel_dir(name)) for name in sorted(channels)}

    env_dict: dict[str, Any] = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channel_dirs,
        "current_host": CURRENT_HOST,
        "framework_module": TRAINING_MODULE,
        "hosts": hosts,
        "hyperparameters": user,
        "input_config_dir": str(layout.config_dir),
        "input_data_config": data_config,
        "input_dir": str(layout.input_dir),
        "is_master": True,
        "job_name": job_name,
        "log_level": int(reserved.get("sagemaker_container_log_level", LOG_LEVEL)),
        "master_hostname": CURRENT_HOST,
        "model_dir": str(layout.model_dir),
        "module_dir": str(reserved.get("sagemaker_submit_directory", "")),
        "module_name": module_name,
        "network_interface_name": resources["network_interface_name"],
        "num_cpus": num_cpus if num_cpus is not None else (os.cpu_count() or 1),
        "num_gpus": 0,
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "output_intermediate_dir": str(layout.intermediate_dir),
        "resource_config": resources,
        "user_entry_point": program,
    }
    if toolkit_48:
        group = resources["instance_groups"][0]
        env_dict.update(
            {
                "current_instance_group": GROUP_NAME,
                "current_instance_group_hosts": hosts,
                "current_instance_type": instance_type,
                "distribution_hosts": [],
                "distribution_instance_groups": [],
                "instance_groups": [GROUP_NAME],
                "instance_groups_dict": {GROUP_NAME: group},
                "is_hetero": False,
                "is_modelparallel_enabled": None,
                "is_smddpmprun_installed": False,
                "is_smddprun_installed": False,
                "num_neurons": 0,
            }
        )

    # Environment.to_env_vars: an explicit list of properties, each "SM_" + upper case.
    exported: dict[str, Any] = {
        "hosts": hosts,
        "network_interface_name": env_dict["network_interface_name"],
        "hps": user,
        "user_entry_point": program,
        "framework_params": framework,
        "resource_config": resources,
        "input_data_config": data_config,
        "output_data_dir": env_dict["output_data_dir"],
        "channels": sorted(channels),
        "current_host": CURRENT_HOST,
        "module_name": module_name,
        "log_level": env_dict["log_level"],
        "framework_module": TRAINING_MODULE,
        "input_dir": env_dict["input_dir"],
        "input_config_dir": env_dict["input_config_dir"],
        "output_dir": env_dict["output_dir"],
        "num_cpus": env_dict["num_cpus"],
        "num_gpus": 0,
        "model_dir": env_dict["model_dir"],
        "module_dir": env_dict["module_dir"],
        "training_env": {**env_dict, "hyperparameters": user},
        "user_args": to_cmd_args(user),
        "output_intermediate_dir": env_dict["output_intermediate_dir"],
    }
    if toolkit_48:
        for key in (
            "current_instance_type",
            "current_instance_group",
            "current_instance_group_hosts",
            "instance_groups",
            "instance_groups_dict",
            "distribution_instance_groups",
            "is_hetero",
            "num_neurons",
        ):
            exported[key] = env_dict[key]
    for name, path in channel_dirs.items():
        exported[f"channel_{name}"] = path
    for key, value in user.items():
        exported[f"hp_{key}"] = value

    env: dict[str, str] = {
        # Image ENV of the scikit-learn container.
        "SAGEMAKER_TRAINING_MODULE": TRAINING_MODULE,
        "SM_INPUT": str(layout.input_dir),
        "SM_INPUT_TRAINING_CONFIG_FILE": str(layout.config_dir / "hyperparameters.json"),
        "SM_INPUT_DATA_CONFIG_FILE": str(layout.config_dir / "inputdataconfig.json"),
        "SM_CHECKPOINT_CONFIG_FILE": str(layout.config_dir / "checkpointconfig.json"),
        # Platform ENV.
        "TRAINING_JOB_NAME": job_name,
        "AWS_REGION": region,
    }
    env.update({f"SM_{key.upper()}": _env_value(value) for key, value in exported.items()})
    # Set by the toolkit itself before running the script.
    env["SAGEMAKER_JOB_NAME"] = job_name
    env["SAGEMAKER_REGION"] = region
    env["CURRENT_HOST"] = CURRENT_HOST
    return env


def failure_text(command: list[str], exit_code: int) -> str:
    """What the toolkit writes to ``output/failure`` when the user script fails."""
    lines = [
        "ExecuteUserScriptError:",
        "ExitCode 1",
        'ErrorMessage ""',
        f'Command "{" ".join(command)}"',
    ]
    if exit_code in (137, -9):
        lines.append('ExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"')
    return "\n".join(lines)
