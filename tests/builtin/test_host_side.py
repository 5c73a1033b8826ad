"""The host side of the built-in XGBoost: catalog entries, cache identity, helpers, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import invoke

from fedsage.builtin import INSIDE
from fedsage.builtin import xgboost as builtin_xgb
from fedsage.errors import ConfigurationError
from fedsage.runtimes import SUPPORTED_VERSIONS, XGBOOST_VERSIONS, Runtime
from fedsage.runtimes.build import RUNTIMES_DIR_ENV
from fedsage.runtimes.catalog import _RECIPE, load_spec

# (Python, xgboost, numpy, pandas, scipy, scikit-learn, pyarrow) of the images
# (reference/xgboost-builtin.md section 1).
IMAGES = {
    "1.7-1": ("3.9", "1.7.4", "1.24.1", "1.2.4", "1.8.0", "0.24.1", "14.0.1"),
    "3.0-5": ("3.10", "3.0.5", "2.1.0", "2.2.3", "1.15.0", "1.5.2", "22.0.0"),
}


@pytest.mark.parametrize("version", XGBOOST_VERSIONS)
def test_xgboost_specs_lock_the_image_pins(version: str) -> None:
    python, xgb, numpy, pandas, scipy, sklearn, pyarrow = IMAGES[version]
    spec = load_spec(version, "xgboost").exact
    assert (spec.framework, spec.python, spec.approximate) == ("xgboost", python, False)
    pins = spec.packages
    assert (pins["xgboost"], pins["numpy"], pins["pandas"]) == (xgb, numpy, pandas)
    assert (pins["scipy"], pins["scikit-learn"], pins["pyarrow"]) == (scipy, sklearn, pyarrow)
    assert pins["sagemaker-containers"] == "2.8.6.post2"
    assert pins["sagemaker-inference"] == "1.5.5"
    assert "nvidia-nccl-cu12" not in pins
    assert spec.name.startswith(f"xgboost-{version}-")
    assert "xgboost" in spec.verify_modules
    assert builtin_xgb.resolve_runtime  # the entry point the backends use


def test_scikit_learn_cache_keys_did_not_change() -> None:
    """Existing scikit-learn caches stay valid: the hash has the fields it always had."""
    for version in SUPPORTED_VERSIONS:
        for spec in (load_spec(version).exact, *load_spec(version).fallbacks):
            body = json.dumps(
                {
                    "recipe": _RECIPE,
                    "framework_version": spec.framework_version,
                    "python": spec.python,
                    "packages": spec.packages,
                    "approximate": spec.approximate,
                    "binary_only": sorted(spec.binary_only),
                },
                sort_keys=True,
            )
            assert spec.spec_hash == hashlib.sha256(body.encode()).hexdigest()
            assert spec.name == f"{version}-{spec.spec_hash[:12]}"
    # The folder of CI's shared 0.23-1 runtime, built before frameworks existed.
    assert load_spec("0.23-1").exact.name == "0.23-1-fc4320ac7fd1"


def test_versions_are_checked_per_framework() -> None:
    assert builtin_xgb.check_version("1.7-1") == "1.7-1"
    with pytest.raises(ConfigurationError) as info:
        builtin_xgb.check_version("latest")
    assert "deprecated XGBoost 0.72 image" in str(info.value)
    assert "'1.7-1', '3.0-5'" in str(info.value)
    with pytest.raises(ConfigurationError, match="'host' exists for scikit-learn only"):
        load_spec("host", "xgboost")
    with pytest.raises(ConfigurationError, match="not a supported scikit-learn framework"):
        load_spec("1.7-1")  # an XGBoost version is not a scikit-learn one
    with pytest.raises(ConfigurationError, match="not a supported framework"):
        load_spec("1.7-1", "tensorflow")
    assert builtin_xgb.image_name("3.0-5") == "sagemaker-xgboost:3.0-5"


def test_hyperparameters_are_plain_strings() -> None:
    encoded = builtin_xgb.encode_hyperparameters(
        {"num_round": 10, "eta": 0.2, "objective": "binary:logistic", "flag": True}
    )
    # The SDK's Estimator sends str(value), not JSON: "binary:logistic" without quotes.
    assert encoded == {
        "num_round": "10",
        "eta": "0.2",
        "objective": "binary:logistic",
        "flag": "True",
    }
    assert builtin_xgb.encode_hyperparameters(None) == {}
    with pytest.raises(ConfigurationError, match="hyperparameters parameter must be a dict"):
        builtin_xgb.encode_hyperparameters([("num_round", 1)])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at most 100"):
        builtin_xgb.encode_hyperparameters({str(i): i for i in range(101)})


def test_programs_and_serving_env() -> None:
    runtime = Runtime(
        framework_version="1.7-1", python=Path("/rt/bin/python"), python_version="3.9"
    )
    assert builtin_xgb.training_command(runtime) == [
        "/rt/bin/python",
        str(INSIDE / "xgboost_algorithm_train.py"),
    ]
    assert builtin_xgb.TRAINING_PROGRAM.is_file()
    assert (builtin_xgb.SERVING_DIR / builtin_xgb.SERVING_PROGRAM).is_file()
    env = builtin_xgb.serving_env({"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label"})
    assert env["SAGEMAKER_PROGRAM"] == "xgboost_algorithm_serve.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == str(INSIDE)
    assert env["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == "text/csv"
    assert env["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label"
    assert env["OMP_NUM_THREADS"] == "1"  # one xgboost thread per worker, as the image
    user = builtin_xgb.serving_env(
        {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json", "OMP_NUM_THREADS": "2"}
    )
    assert user["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == "application/json"
    assert user["OMP_NUM_THREADS"] == "2"  # a user's choice wins


def test_inside_code_keeps_python38_syntax_and_lints_clean() -> None:
    """The in-runtime code is outside the project's py310 lint; check it for py38."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            "--target-version",
            "py38",
            "--line-length",
            "100",
            "--select",
            "E,F,W,I,B,SIM",
            str(INSIDE),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_final_metrics_from_a_log() -> None:
    log = (
        "[2026-01-01:00:00:00:INFO] Single node training.\n"
        "[0]\ttrain-rmse:1.60613\tvalidation-rmse:1.81726\tvalidation-mae:1.44840\n"
        "[1]\ttrain-rmse:1.24207\tvalidation-rmse:1.41679\tvalidation-mae:1.08829\n"
    )
    assert builtin_xgb.final_metrics(log) == [
        {"MetricName": "validation:mae", "Value": 1.08829},
        {"MetricName": "train:rmse", "Value": 1.24207},
        {"MetricName": "validation:rmse", "Value": 1.41679},
    ]
    names = [d["Name"] for d in builtin_xgb.metric_definitions()]
    assert "validation:auc" in names and "train:logloss" in names and len(names) == 66
    image_regex = next(
        d["Regex"] for d in builtin_xgb.metric_definitions() if d["Name"] == "validation:rmse"
    )
    assert image_regex == ".*\\[[0-9]+\\].*#011validation-rmse:(\\S+)"




@pytest.mark.slow
def test_cli_lists_builds_and_locates_xgboost_runtimes(
    xgb171: Runtime, xgb305: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert xgb171.root is not None and xgb305.root is not None
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(xgb171.root.parent))
    result = invoke(["runtimes", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("xgboost-1.7-1 "))
    assert "xgboost" in row and "3.9.18" in row and "1.7.4" in row and "exact" in row
    result = invoke(["runtimes", "build", "xgboost-3.0-5"])
    assert result.exit_code == 0, result.output
    assert "xgboost-3.0-5: Python 3.10.13, xgboost 3.0.5 (exact)" in result.output
    result = invoke(["runtimes", "build", "--framework", "xgboost", "1.7-1"])
    assert result.exit_code == 0, result.output
    assert "xgboost-1.7-1: Python 3.9.18, xgboost 1.7.4 (exact)" in result.output
    result = invoke(["runtimes", "path", "xgboost-1.7-1"])
    assert result.exit_code == 0 and result.output.strip() == str(xgb171.root)
    result = invoke(["runtimes", "build", "xgboost-latest"])
    assert result.exit_code == 1 and "0.72" in result.output
