"""The training contract's pure functions against shared/reference/sagemaker-contract.md §1."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import PurePosixPath

import pytest

from fedsage.errors import ConfigurationError
from fedsage.training import contract
from fedsage.training.spec import base_from_name, check_base_job_name, name_from_base

HPS = {"flag": True, "k": 3, "max-depth": 5, "name": "rf", "layers": [1, 2], "nested": {"b": "x", "a": 1}, "none": None}


def test_sdk_encodes_every_value_as_json():
    encoded = contract.encode_hyperparameters({100: 100, "s": "rf", "t": True, "l": [1, 2]})
    assert encoded == {"100": "100", "s": '"rf"', "t": "true", "l": "[1, 2]"}


def test_non_serialisable_hyperparameter_names_the_entry():
    with pytest.raises(ConfigurationError, match=r"hyperparameters.*bad=.*object"):
        contract.encode_hyperparameters({"bad": object()})


def test_hyperparameter_limits():
    with pytest.raises(ConfigurationError, match="at most 100"):
        contract.encode_hyperparameters({f"k{i}": i for i in range(101)})
    with pytest.raises(ConfigurationError, match="too long"):
        contract.encode_hyperparameters({"k": "x" * 2600})


def test_toolkit_decodes_json_and_keeps_raw_strings():
    assert contract.decode_hyperparameters({"a": "5", "b": "not-json", "c": '"rf"'}) == {
        "a": 5,
        "b": "not-json",
        "c": "rf",
    }


def test_argv_rendering_matches_the_toolkit_table():
    decoded = contract.decode_hyperparameters(contract.encode_hyperparameters(HPS))
    assert contract.to_cmd_args(decoded) == [
        "--flag", "True",
        "-k", "3",
        "--layers", "[1, 2]",
        "--max-depth", "5",
        "--name", "rf",
        "--nested", "a=1,b=x",
        "--none", "",
    ]


def test_reserved_hyperparameters_are_split_out():
    decoded = {"sagemaker_program": "train.py", "sagemaker_custom": 1, "lr": 0.1}
    user, reserved, framework = contract.split_hyperparameters(decoded)
    assert user == {"lr": 0.1}
    assert reserved == {"sagemaker_program": "train.py"}
    assert framework == {"sagemaker_custom": 1}


def _env(toolkit_48: bool = True) -> dict[str, str]:
    hps = {
        **contract.encode_hyperparameters(HPS),
        **contract.reserved_hyperparameters(
            program="train.py",
            submit_directory="s3://b/p/job/source/sourcedir.tar.gz",
            job_name="job",
            region="us-east-1",
        ),
    }
    return contract.training_env(
        contract.Layout(contract.CONTAINER_ROOT),
        hyperparameters=hps,
        channels={"train": "text/csv", "test": None},
        instance_type="ml.m5.large",
        job_name="job",
        region="us-east-1",
        num_cpus=4,
        toolkit_48=toolkit_48,
    )


def test_environment_variables_match_the_reference():
    env = _env()
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_HPS"] == json.dumps(
        {"flag": True, "k": 3, "layers": [1, 2], "max-depth": 5, "name": "rf",
         "nested": {"a": 1, "b": "x"}, "none": None},
        sort_keys=True, separators=(",", ":"),
    )
    assert env["SM_HP_MAX-DEPTH"] == "5"
    assert env["SM_HP_NAME"] == "rf"
    assert env["SM_HP_FLAG"] == "true"
    assert env["SM_HP_LAYERS"] == "[1,2]"
    assert env["SM_HP_NONE"] == ""
    assert json.loads(env["SM_USER_ARGS"])[:4] == ["--flag", "True", "-k", "3"]
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_MODULE_DIR"] == "s3://b/p/job/source/sourcedir.tar.gz"
    assert env["SM_FRAMEWORK_MODULE"] == "sagemaker_sklearn_container.training:main"
    assert env["SM_FRAMEWORK_PARAMS"] == "{}"
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_INPUT_DIR"] == "/opt/ml/input"
    assert env["SM_INPUT_CONFIG_DIR"] == "/opt/ml/input/config"
    assert env["SM_OUTPUT_DIR"] == "/opt/ml/output"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == "/opt/ml/output/intermediate"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_NUM_CPUS"] == "4"
    assert env["SM_NUM_GPUS"] == "0"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["ContentType"] == "text/csv"
    assert "ContentType" not in json.loads(env["SM_INPUT_DATA_CONFIG"])["test"]
    assert env["SM_INPUT_TRAINING_CONFIG_FILE"] == "/opt/ml/input/config/hyperparameters.json"
    assert env["TRAINING_JOB_NAME"] == "job"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["SAGEMAKER_JOB_NAME"] == "job"
    assert env["CURRENT_HOST"] == "algo-1"


def test_training_env_keys_per_toolkit_version():
    base = {
        "additional_framework_parameters", "channel_input_dirs", "current_host",
        "framework_module", "hosts", "hyperparameters", "input_config_dir",
        "input_data_config", "input_dir", "is_master", "job_name", "log_level",
        "master_hostname", "model_dir", "module_dir", "module_name",
        "network_interface_name", "num_cpus", "num_gpus", "output_data_dir", "output_dir",
        "output_intermediate_dir", "resource_config", "user_entry_point",
    }
    old = json.loads(_env(toolkit_48=False)["SM_TRAINING_ENV"])
    assert set(old) == base
    assert "SM_NUM_NEURONS" not in _env(toolkit_48=False)
    new_env = _env(toolkit_48=True)
    new = json.loads(new_env["SM_TRAINING_ENV"])
    assert base < set(new)
    assert {"current_instance_type", "instance_groups", "is_hetero", "num_neurons"} <= set(new)
    assert new_env["SM_NUM_NEURONS"] == "0"
    assert new_env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert new_env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert new_env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == "[]"
    assert new_env["SM_IS_HETERO"] == "false"


def test_failure_text_is_the_toolkits():
    text = contract.failure_text(["/usr/bin/python", "train.py", "--a", "1"], 2)
    assert text == (
        'ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""\n'
        'Command "/usr/bin/python train.py --a 1"'
    )
    assert "OutOfMemory" in contract.failure_text(["python", "x.py"], 137)


def test_job_names_follow_the_sdk():
    now = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert name_from_base("sagemaker-scikit-learn", now) == (
        "sagemaker-scikit-learn-2024-05-01-12-00-00-123"
    )
    long = name_from_base("x" * 80, now)
    assert len(long) == 63
    assert base_from_name(long) == "x" * 39
    with pytest.raises(ConfigurationError, match="base_job_name"):
        check_base_job_name("bad_name!")


def test_layout_paths():
    layout = contract.Layout(PurePosixPath("/opt/ml"))
    assert str(layout.channel_dir("train")) == "/opt/ml/input/data/train"
    assert str(layout.failure_file) == "/opt/ml/output/failure"
