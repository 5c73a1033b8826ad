"""Amazon ECR: create the repository if missing and log in with ``GetAuthorizationToken``.

boto3 is imported lazily (extra ``fedsage[aws]``).  ``profile_name`` is the AWS profile,
as in fedml-aws.  The token is valid for 12 hours; it is kept out of reprs, logs and
error messages, and goes only to hosts of the exact ECR form
``<12-digit account>.dkr.ecr.<region>.amazonaws.com`` (``.amazonaws.com.cn`` in China),
over https.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..._aws_errors import aws_errors
from ...errors import ConfigurationError, DeploymentError, import_extra
from .manifests import pull_secret_manifest
from .registry_client import RegistryClient

__all__ = [
    "ECR_HOST_RE",
    "EcrLogin",
    "aws_session",
    "ecr_login",
    "ensure_ecr_repository",
    "is_ecr_registry",
]

logger = logging.getLogger(__name__)

ECR_HOST_RE = re.compile(
    r"[0-9]{12}\.dkr\.ecr\.[a-z]{2}(?:-[a-z]+)+-[0-9]+\.amazonaws\.com(?:\.cn)?"
)


def is_ecr_registry(host: str) -> bool:
    """Whether ``host`` (no port, no scheme) is an Amazon ECR registry host.

    Only the exact form ``<12-digit account>.dkr.ecr.<region>.amazonaws.com`` (or
    ``.amazonaws.com.cn``) is: other ``*.amazonaws.com`` hosts (API Gateway, S3
    websites, ...) can be run by anyone and must never see the token.
    """
    return ECR_HOST_RE.fullmatch(host.lower()) is not None


def aws_session(profile_name: str | None = None, region_name: str | None = None) -> Any:
    """Return a ``boto3.Session`` for the AWS profile ``profile_name``.

    Raises
    ------
    ConfigurationError
        If the profile does not exist.
    """
    boto3 = import_extra("boto3", "aws")
    with aws_errors("open an AWS session", error=ConfigurationError):
        return boto3.Session(profile_name=profile_name, region_name=region_name)


@dataclass(frozen=True)
class EcrLogin:
    """Credentials for one ECR registry, from ``GetAuthorizationToken``.

    Attributes
    ----------
    registry : str
        The host, ``<account>.dkr.ecr.<region>.amazonaws.com``.
    endpoint : str
        ``https://`` + host (the token's ``proxyEndpoint``).
    expires_at : datetime
        When the token stops working (12 hours after issue).
    """

    registry: str
    endpoint: str
    expires_at: datetime
    _token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"EcrLogin(registry={self.registry!r}, expires_at={self.expires_at!s}, token=***)"

    def client(self, **kwargs: Any) -> RegistryClient:
        """A :class:`RegistryClient` for this registry, authenticated with the token."""
        return self.client_for(urlsplit(self.endpoint).netloc, **kwargs)

    def client_for(self, host: str, **kwargs: Any) -> RegistryClient:
        """A client for another ECR registry the same token may read (``https://host``).

        The token authorises any ECR registry the IAM principal may read, such as the
        AWS accounts that publish the SageMaker images.

        Raises
        ------
        ConfigurationError
            If ``host`` is not an ECR registry host (the token would leak to it).
        """
        if not is_ecr_registry(host):
            raise ConfigurationError(
                f"refusing to send the ECR token to {host!r}: it is not an Amazon ECR "
                "registry (<12-digit account>.dkr.ecr.<region>.amazonaws.com)"
            )
        return RegistryClient(f"https://{host}", token=self._token, **kwargs)

    def pull_secret(self, name: str, namespace: str) -> dict[str, Any]:
        """The image pull Secret for this registry (re-applied on every deploy)."""
        username, _, password = base64.b64decode(self._token).decode().partition(":")
        return pull_secret_manifest(name, namespace, self.registry, username, password)


def ecr_login(session: Any) -> EcrLogin:
    """Call ``GetAuthorizationToken`` and return the registry's credentials.

    Raises
    ------
    DeploymentError
        If the call fails or AWS names a registry that is not an ECR host.
    ConfigurationError
        For missing credentials or permissions.
    """
    ecr = session.client("ecr")
    with aws_errors("call ecr:GetAuthorizationToken", error=DeploymentError):
        data = ecr.get_authorization_token()["authorizationData"][0]
    endpoint = data["proxyEndpoint"]
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    host = urlsplit(endpoint).netloc
    if not is_ecr_registry(host):
        raise DeploymentError(f"GetAuthorizationToken named {host!r}, which is not an ECR host")
    logger.info("logged in to ECR %s (token valid until %s)", host, data.get("expiresAt"))
    return EcrLogin(
        registry=host,
        endpoint=f"https://{host}",
        expires_at=data.get("expiresAt"),
        _token=data["authorizationToken"],
    )


def ensure_ecr_repository(name: str, session: Any) -> str:
    """Create the ECR repository ``name`` if it does not exist; return its URI.

    Raises
    ------
    DeploymentError
        If ECR refuses (an invalid name, ...).
    ConfigurationError
        For missing credentials or permissions.
    """
    ecr = session.client("ecr")
    options: dict[str, Any] = {"kind": "ECR repository", "name": name, "error": DeploymentError}
    with aws_errors("describe ECR repository", missing_ok=True, **options) as call:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    if not call.missing:
        return str(found["repositoryUri"])
    with aws_errors("create ECR repository", **options):
        created = ecr.create_repository(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": False}
        )["repository"]
    logger.info("created ECR repository %s", created["repositoryUri"])
    return str(created["repositoryUri"])
