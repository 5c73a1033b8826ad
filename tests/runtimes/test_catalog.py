"""Supported versions, the committed specs, and argument checks."""

from __future__ import annotations

import pytest

from fedsage.errors import ConfigurationError
from fedsage.runtimes import (
    DEFAULT_FRAMEWORK_VERSION,
    HOST,
    SUPPORTED_VERSIONS,
    check_framework_version,
    host_runtime,
    resolve_runtime,
)
from fedsage.runtimes.build import RUNTIMES_DIR_ENV
from fedsage.runtimes.catalog import load_spec

# framework_version -> (Python, scikit-learn, numpy, pandas) of the image (reference §1, f).
IMAGES = {
    "0.20.0": ("3.7", "0.20.0", "1.19.5", "0.25.3"),
    "0.23-1": ("3.7", "0.23.2", "1.19.2", "1.1.3"),
    "1.0-1": ("3.8", "1.0.2", "1.24.1", "1.1.3"),
    "1.2-1": ("3.9", "1.2.1", "1.24.1", "1.1.3"),
    "1.4-2": ("3.10", "1.4.2", "2.1.0", "2.3.2"),
    "1.4-2-py312": ("3.12", "1.4.2", "2.1.0", "2.3.2"),
    "1.9-0": ("3.12", "1.9.0", "2.5.1", "2.2.3"),
}


def test_supported_versions_and_default() -> None:
    assert tuple(IMAGES) == SUPPORTED_VERSIONS
    assert DEFAULT_FRAMEWORK_VERSION == "0.23-1"
    for version in (*SUPPORTED_VERSIONS, HOST):
        assert check_framework_version(version) == version


@pytest.mark.parametrize("bad", ["0.23", "1.2-2", "", "latest", "HOST"])
def test_unknown_version_names_every_supported_value(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_framework_version(bad, param="fv")
    message = str(info.value)
    assert f"fv={bad!r}" in message
    for version in (*SUPPORTED_VERSIONS, HOST):
        assert repr(version) in message
    assert isinstance(info.value, ValueError)


def test_unknown_version_is_refused_before_anything_is_written(
    clean_runtime_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clean_runtime_env / "runtimes"
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(root))
    with pytest.raises(ConfigurationError):
        resolve_runtime("0.24-1")
    assert not root.exists()
    assert not (clean_runtime_env / "home").exists()


def test_host_is_fedsage_own_environment() -> None:
    runtime = resolve_runtime(HOST)
    assert runtime == host_runtime()
    assert runtime.framework_version == HOST and not runtime.approximate


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_specs_lock_the_image_pins(version: str) -> None:
    python, sklearn, numpy, pandas = IMAGES[version]
    specs = load_spec(version)
    exact = specs.exact
    assert exact.python == python and not exact.approximate
    assert exact.packages["scikit-learn"] == sklearn
    assert exact.packages["numpy"] == numpy
    assert exact.packages["pandas"] == pandas
    for dist in (
        "sagemaker-training",
        "sagemaker-containers",
        "flask",
        "werkzeug",
        "boto3",
        "botocore",
        "jinja2",
        "itsdangerous",
        "markupsafe",
        "six",
        "setuptools",
    ):
        assert dist in exact.packages, dist
    # Every version is exact ('==' only) and setuptools keeps pkg_resources.
    assert all(v[0].isdigit() for v in exact.packages.values())
    assert int(exact.packages["setuptools"].split(".")[0]) < 81
    assert exact.name.startswith(f"{version}-") and len(exact.spec_hash) == 64
    assert specs.fallbacks and all(fb.approximate for fb in specs.fallbacks)
    assert specs.fallbacks[0].name != exact.name


def test_fallback_of_old_lines_is_scikit_learn_113_on_311() -> None:
    for version in ("0.23-1", "1.0-1"):
        fallback = load_spec(version).fallbacks[0]
        assert fallback.python == "3.11"
        assert {k: fallback.packages[k] for k in ("scikit-learn", "numpy", "scipy", "pandas")} == {
            "scikit-learn": "1.1.3",
            "numpy": "1.23.5",
            "scipy": "1.9.3",
            "pandas": "1.5.3",
        }
