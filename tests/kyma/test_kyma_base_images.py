"""SageMaker's scikit-learn image: the SDK's ``image_uris`` first, the table as fallback."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from fedsage.errors import ConfigurationError
from fedsage.kyma.cluster.base_images import (
    SKLEARN_IMAGE_ACCOUNTS,
    _from_table,
    sagemaker_sklearn_image,
    split_reference,
)
from fedsage.kyma.cluster.ecr import is_ecr_registry

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
image_uris = importlib.import_module("sagemaker.image_uris")  # the aws extra (dev venv)

# The SDK's regions the table leaves out, on purpose: their registries are not
# *.amazonaws.com(.cn) hosts, to which fedsage never sends the ECR token.
NOT_ECR_REGIONS = {"us-iso-east-1", "us-isob-east-1", "us-isof-east-1", "us-isof-south-1"}


def _sdk(version: str, region: str) -> str:
    return str(
        image_uris.retrieve(
            "sklearn",
            region=region,
            version=version,
            image_scope="inference",
            instance_type="ml.m5.large",
        )
    )


def _sdk_regions() -> set[str]:
    config = image_uris.config_for_framework("sklearn")["inference"]
    return {r for spec in config["versions"].values() for r in spec["registries"]}


def test_the_table_agrees_with_the_sdk_for_every_region():
    for region in SKLEARN_IMAGE_ACCOUNTS:
        host, repository, tag = _from_table("1.2-1", region)
        assert _sdk("1.2-1", region) == f"{host}/{repository}:{tag}", region
        assert is_ecr_registry(host)
    # and the SDK publishes each image version from the same accounts
    config = image_uris.config_for_framework("sklearn")["inference"]
    for version, spec in config["versions"].items():
        for region, account in SKLEARN_IMAGE_ACCOUNTS.items():
            assert spec["registries"].get(region) == account, (version, region)


def test_every_sdk_region_is_in_the_table_or_named():
    missing = _sdk_regions() - set(SKLEARN_IMAGE_ACCOUNTS)
    hosts = {region: _sdk("1.2-1", region).split("/", 1)[0] for region in missing}
    new_ecr = sorted(r for r, host in hosts.items() if is_ecr_registry(host))
    assert new_ecr == [], f"add these SDK regions to SKLEARN_IMAGE_ACCOUNTS: {new_ecr}"
    assert missing == NOT_ECR_REGIONS, "name the SDK regions the table leaves out"


def test_the_sdk_answers_first():
    assert sagemaker_sklearn_image("1.2-1", "eu-central-1") == (
        "492215442770.dkr.ecr.eu-central-1.amazonaws.com",
        "sagemaker-scikit-learn",
        "1.2-1-cpu-py3",
    )
    assert sagemaker_sklearn_image("0.23-1", "cn-north-1")[0] == (
        "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn"
    )
    with pytest.raises(ConfigurationError, match="FEDSAGE_KYMA_BASE_IMAGE") as caught:
        sagemaker_sklearn_image("1.2-1", "xx-nowhere-1")
    assert "SageMaker SDK" in str(caught.value)
    with pytest.raises(ConfigurationError, match="FEDSAGE_KYMA_BASE_IMAGE"):
        sagemaker_sklearn_image("host", "us-east-1")


def test_the_table_without_the_sdk():
    script = (
        "import sys\n"
        "sys.modules['sagemaker'] = None  # the aws extra's SDK is not installed\n"
        "from fedsage.errors import ConfigurationError\n"
        "from fedsage.kyma.cluster.base_images import sagemaker_sklearn_image\n"
        "print(sagemaker_sklearn_image('1.2-1', 'us-east-1'))\n"
        "try:\n"
        "    sagemaker_sklearn_image('1.2-1', 'us-iso-east-1')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found, refused = done.stdout.splitlines()
    assert found == (
        "('683313688378.dkr.ecr.us-east-1.amazonaws.com', 'sagemaker-scikit-learn', "
        "'1.2-1-cpu-py3')"
    )
    assert "us-iso-east-1" in refused and "FEDSAGE_KYMA_BASE_IMAGE" in refused


def test_split_reference():
    assert split_reference("127.0.0.1:5000/base:1.2-1") == ("127.0.0.1:5000", "base", "1.2-1")
    assert split_reference("r.example/a/b@sha256:" + "0" * 64)[2] == "sha256:" + "0" * 64
    assert split_reference("r.example/a/b") == ("r.example", "a/b", "latest")
    with pytest.raises(ConfigurationError, match="registry-host/repository:tag"):
        split_reference("sklearn:1.2")
