"""The base image of a cluster deployment: SageMaker's scikit-learn image, or a configured one.

:func:`sagemaker_sklearn_image` asks the SageMaker Python SDK (``sagemaker.image_uris``,
extra ``fedsage[aws]``) where the image of a ``framework_version`` lives in a region; the
table :data:`SKLEARN_IMAGE_ACCOUNTS` (taken from that SDK, and checked against it by the
tests) is the fallback when the SDK is not installed or does not know the version.
``FEDSAGE_KYMA_BASE_IMAGE`` names another base (``registry-host/repository:tag``).

:func:`base_image_client` picks the client that reads the base: the ECR token goes only
to ECR registry hosts (over https), plain http only to a loopback registry.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from ...errors import ConfigurationError
from ...runtimes.base import HOST
from .._hosts import is_loopback, split_host_port
from .ecr import EcrLogin, is_ecr_registry
from .registry_client import RegistryClient

__all__ = [
    "BASE_IMAGE_ENV",
    "SKLEARN_IMAGE_ACCOUNTS",
    "SKLEARN_REPOSITORY",
    "base_image_client",
    "sagemaker_image",
    "sagemaker_sklearn_image",
    "split_reference",
]

logger = logging.getLogger(__name__)

BASE_IMAGE_ENV = "FEDSAGE_KYMA_BASE_IMAGE"
SKLEARN_REPOSITORY = "sagemaker-scikit-learn"
# The AWS accounts that publish the SageMaker scikit-learn images, per region, as the
# SageMaker Python SDK 2.257 lists them (its image_uris/sklearn.json); a test compares
# them with the installed SDK.  The SDK's ISO regions are left out: their registries are
# not *.amazonaws.com hosts, to which the ECR token is never sent.
SKLEARN_IMAGE_ACCOUNTS = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}


def _image_uris() -> Any:
    """``sagemaker.image_uris``, imported quietly, or None without the aws extra."""
    # As fedsage.backends does: fedsage pins SDK v2 on purpose, so its v2-deprecation
    # notice is noise; and the SDK's config logger reports every missing defaults file.
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    config_logger = logging.getLogger("sagemaker.config")
    if config_logger.level == logging.NOTSET:
        config_logger.setLevel(logging.WARNING)
    try:
        return importlib.import_module("sagemaker.image_uris")
    except ImportError:
        return None


def _split_uri(uri: str) -> tuple[str, str, str]:
    host, _, rest = uri.partition("/")
    repository, _, tag = rest.rpartition(":")
    return host, repository, tag


def _from_table(framework_version: str, region: str) -> tuple[str, str, str] | None:
    account = SKLEARN_IMAGE_ACCOUNTS.get(region)
    if account is None:
        return None
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    host = f"{account}.dkr.ecr.{region}{suffix}"
    return host, SKLEARN_REPOSITORY, f"{framework_version}-cpu-py3"


def sagemaker_sklearn_image(framework_version: str, region: str) -> tuple[str, str, str]:
    """Return ``(registry host, repository, tag)`` of SageMaker's scikit-learn image.

    Parameters
    ----------
    framework_version : str
        The scikit-learn image version (``"1.2-1"``).
    region : str
        The AWS region (``"eu-central-1"``).

    Returns
    -------
    tuple of str
        E.g. ``("492215442770.dkr.ecr.eu-central-1.amazonaws.com",
        "sagemaker-scikit-learn", "1.2-1-cpu-py3")``.

    Raises
    ------
    ConfigurationError
        If neither the SageMaker SDK nor :data:`SKLEARN_IMAGE_ACCOUNTS` knows the image
        (or the version is ``host``); the message says to set ``FEDSAGE_KYMA_BASE_IMAGE``.
    """
    if not framework_version or framework_version == HOST:
        raise ConfigurationError(
            f"no SageMaker scikit-learn image for framework_version {framework_version!r}; "
            f"set {BASE_IMAGE_ENV} to registry/repository:tag"
        )
    image_uris = _image_uris()
    refused = ""
    if image_uris is not None:
        try:
            uri = image_uris.retrieve(
                "sklearn",
                region=region,
                version=framework_version,
                image_scope="inference",
                instance_type="ml.m5.large",
            )
        except ValueError as exc:  # a region or version this SDK does not know
            refused = f" (the SageMaker SDK: {exc})"
            logger.info("sagemaker.image_uris refused %s in %s: %s", framework_version, region, exc)
        else:
            return _split_uri(str(uri))
    found = _from_table(framework_version, region)
    if found is None:
        raise ConfigurationError(
            f"no SageMaker scikit-learn image known for region {region!r} and "
            f"framework_version {framework_version!r}{refused}; set {BASE_IMAGE_ENV} to "
            "registry/repository:tag"
        )
    return found


def sagemaker_image(framework: str, framework_version: str, region: str) -> tuple[str, str, str]:
    """``(registry host, repository, tag)`` of the SageMaker image of ``framework``.

    scikit-learn goes through :func:`sagemaker_sklearn_image` (SDK, then table); other
    frameworks (``xgboost``) only through the SDK, which aws mode always has.

    Raises
    ------
    ConfigurationError
        If the image is unknown; the message names ``FEDSAGE_KYMA_BASE_IMAGE``.
    """
    if framework == "scikit-learn":
        return sagemaker_sklearn_image(framework_version, region)
    image_uris = _image_uris()
    if image_uris is None:
        raise ConfigurationError(
            f"the SageMaker {framework} image is found through the SageMaker SDK; install "
            f"fedsage[aws], or set {BASE_IMAGE_ENV} to registry/repository:tag"
        )
    try:
        uri = image_uris.retrieve(framework, region=region, version=framework_version)
    except ValueError as exc:
        raise ConfigurationError(
            f"no SageMaker {framework} image known for region {region!r} and framework_version "
            f"{framework_version!r} (the SageMaker SDK: {exc}); set {BASE_IMAGE_ENV} to "
            "registry/repository:tag"
        ) from exc
    return _split_uri(str(uri))


def split_reference(ref: str) -> tuple[str, str, str]:
    """``(host, repository, tag or digest)`` of ``host[:port]/repository[:tag|@digest]``.

    Raises
    ------
    ConfigurationError
        If ``ref`` names no registry host.
    """
    host, _, rest = ref.partition("/")
    if not rest or ("." not in host and ":" not in host and host != "localhost"):
        raise ConfigurationError(f"{BASE_IMAGE_ENV}={ref!r} must be registry-host/repository:tag")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return host, repository, reference


def base_image_client(host: str, login: EcrLogin) -> RegistryClient:
    """The client that reads a base image from ``host`` (``name[:port]``).

    An Amazon ECR host gets the ECR token (it reads any registry the principal may
    read, such as SageMaker's); a loopback host is read over plain http without
    credentials; any other host over https without credentials.

    Parameters
    ----------
    host : str
        The registry host of the base image.
    login : EcrLogin
        The deployment's ECR login.

    Returns
    -------
    RegistryClient
        The client for ``host``.
    """
    if is_ecr_registry(host):
        return login.client_for(host)
    scheme = "http" if is_loopback(split_host_port(host)[0]) else "https"
    return RegistryClient(f"{scheme}://{host}")
