"""Amazon ECR: create the repository if missing and log in with ``GetAuthorizationToken``.

boto3 is imported lazily (extra ``fedsage[aws]``).  ``profile_name`` is the AWS profile,
as in fedml-aws.  The token is valid for 12 hours; it is kept out of reprs, logs and
error messages.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, DeploymentError, import_extra
from .manifests import pull_secret_manifest
from .registry_client import RegistryClient

__all__ = ["EcrLogin", "aws_session", "ecr_login", "ensure_ecr_repository"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    """Translate botocore errors into fedsage's (error code and message, no credentials)."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise DeploymentError(
            f"{what} failed: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise ConfigurationError(
            f"{what} failed: no AWS credentials; configure the profile with `aws configure`"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise DeploymentError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def aws_session(profile_name: str | None = None, region_name: str | None = None) -> Any:
    """Return a ``boto3.Session`` for the AWS profile ``profile_name``."""
    boto3 = import_extra("boto3", "aws")
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=profile_name, region_name=region_name)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigurationError(
            f"the AWS profile {profile_name!r} does not exist; create it with "
            f"`aws configure --profile {profile_name}`"
        ) from exc


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
        return RegistryClient(self.endpoint, token=self._token, **kwargs)

    def pull_secret(self, name: str, namespace: str) -> dict[str, Any]:
        """The image pull Secret for this registry (re-applied on every deploy)."""
        username, _, password = base64.b64decode(self._token).decode().partition(":")
        return pull_secret_manifest(name, namespace, self.registry, username, password)


def ecr_login(session: Any) -> EcrLogin:
    """Call ``GetAuthorizationToken`` and return the registry's credentials."""
    ecr = session.client("ecr")
    with _aws_errors("ecr:GetAuthorizationToken"):
        data = ecr.get_authorization_token()["authorizationData"][0]
    endpoint = data["proxyEndpoint"]
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    host = urlsplit(endpoint).netloc
    logger.info("logged in to ECR %s (token valid until %s)", host, data.get("expiresAt"))
    return EcrLogin(
        registry=host,
        endpoint=endpoint,
        expires_at=data.get("expiresAt"),
        _token=data["authorizationToken"],
    )


def ensure_ecr_repository(name: str, session: Any) -> str:
    """Create the ECR repository ``name`` if it does not exist; return its URI."""
    ecr = session.client("ecr")
    with _aws_errors(f"ecr:DescribeRepositories {name}"):
        try:
            found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
            return str(found["repositoryUri"])
        except ecr.exceptions.RepositoryNotFoundException:
            pass
    with _aws_errors(f"ecr:CreateRepository {name}"):
        created = ecr.create_repository(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": False}
        )["repository"]
    logger.info("created ECR repository %s", created["repositoryUri"])
    return str(created["repositoryUri"])
