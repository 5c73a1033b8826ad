"""Argument checks shared by the public API; every message names the parameter.

Messages follow one shape: ``the <param> parameter of <caller> must be <rule>; got <value>
instead``, followed by the fix where there is one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "check_bool",
    "check_instance_count",
    "check_instance_type",
    "check_logs",
    "check_mode",
    "check_positive_int",
    "resolve_mode",
]

MODES = ("local", "aws")
#: The environment variable that picks the mode when none is passed.
MODE_ENV = "FEDSAGE_MODE"
LOG_CHOICES = ("All", "None", "Training", "Rules")
_ML_INSTANCE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_GPU_FAMILIES = ("ml.p2.", "ml.p3.", "ml.p4", "ml.p5", "ml.g4", "ml.g5", "ml.g6")


def _fail(param: str, caller: str, rule: str, value: Any, fix: str = "") -> ConfigurationError:
    message = f"the {param} parameter of {caller} must be {rule}; got {value!r} instead"
    return ConfigurationError(f"{message}. {fix}" if fix else message)


def check_mode(mode: str | None, caller: str) -> str:
    """Return ``local`` or ``aws``."""
    if mode not in MODES:
        raise _fail(
            "mode", caller, "'local' or 'aws' (or set FEDSAGE_MODE)", mode,
        )
    return mode


def resolve_mode(mode: str | None, caller: str = "DwcSagemaker") -> str:
    """``mode`` if given, else ``FEDSAGE_MODE``, else ``local``; checked."""
    return check_mode(mode or os.environ.get(MODE_ENV) or "local", caller)


def check_bool(value: Any, param: str, caller: str) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise _fail(param, caller, "a bool (True or False)", value)
    return value


def check_positive_int(value: Any, param: str, caller: str) -> int:
    """Return ``value`` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(param, caller, "an int >= 1", value)
    return value


def check_instance_count(value: Any, caller: str) -> int:
    """scikit-learn jobs run on one instance, as SageMaker's SKLearn estimator insists."""
    check_positive_int(value, "instance_count", caller)
    if value != 1:
        raise _fail(
            "instance_count",
            caller,
            "1",
            value,
            "Scikit-Learn does not support distributed training (SageMaker's SKLearn "
            "estimator refuses instance_count != 1, and so does fedsage in both modes); "
            "run several jobs in parallel instead",
        )
    return 1


def check_instance_type(
    value: Any, caller: str, *, default: str | None, local_allowed: bool = True
) -> str:
    """Return ``local`` (where ``local_allowed``) or an ``ml.*`` CPU type."""
    if value is None:
        if default is None:
            raise _fail(
                "instance_type", caller, "an ml.* instance type in aws mode", value,
                "for example instance_type='ml.m5.large'",
            )
        return default
    if value in ("local", "local_gpu") and not local_allowed:
        raise _fail(
            "instance_type", caller, "an ml.* instance type in aws mode", value,
            f"instance_type={value!r} needs local mode; pass an ml.* type such as "
            "'ml.m5.large'",
        )
    if not isinstance(value, str) or not (value == "local" or _ML_INSTANCE.match(value)):
        raise _fail(
            "instance_type", caller, "'local' or an ml.* name such as 'ml.m5.large'", value
        )
    if value.startswith(_GPU_FAMILIES):
        raise _fail(
            "instance_type", caller, "a CPU instance type", value,
            "scikit-learn images are CPU-only; use e.g. 'ml.m5.large' or 'ml.c5.xlarge'",
        )
    return value


def check_logs(value: Any, caller: str) -> str:
    """Normalise ``logs`` as the SDK does: booleans become 'All' / 'None'."""
    if value is True:
        return "All"
    if value is False:
        return "None"
    if value not in LOG_CHOICES:
        raise _fail("logs", caller, f"one of {', '.join(LOG_CHOICES)} or a bool", value)
    return str(value)


def check_existing_file(value: Any, param: str, caller: str) -> Path:
    """Return ``value`` as a Path to an existing file."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise _fail(param, caller, "a path to a file", value)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigurationError(
            f"the {param} parameter of {caller} names {str(path)!r}, which is not a file; "
            "check the path (relative paths start at the working folder "
            f"{str(Path.cwd())!r})"
        )
    return path.resolve()
