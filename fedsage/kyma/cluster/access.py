"""Who may call a model on a cluster: the access settings, read from the environment.

| variable | meaning |
| --- | --- |
| ``FEDSAGE_KYMA_JWT_ISSUER`` + ``FEDSAGE_KYMA_JWKS_URI`` | ``jwt`` rules (both needed) |
| ``FEDSAGE_KYMA_JWT_AUDIENCES`` | comma-separated: a token must be issued for one of them |
| ``FEDSAGE_KYMA_JWT_SCOPES`` | comma-separated: a token must carry every one of them |
| ``FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED=1`` | explicit opt-in to ``noAuth`` |
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ...errors import ConfigurationError

__all__ = [
    "ALLOW_UNAUTHENTICATED_ENV",
    "JWKS_URI_ENV",
    "JWT_AUDIENCES_ENV",
    "JWT_ISSUER_ENV",
    "JWT_SCOPES_ENV",
    "Access",
    "access_from_env",
]

logger = logging.getLogger(__name__)

JWT_ISSUER_ENV = "FEDSAGE_KYMA_JWT_ISSUER"
JWKS_URI_ENV = "FEDSAGE_KYMA_JWKS_URI"
JWT_AUDIENCES_ENV = "FEDSAGE_KYMA_JWT_AUDIENCES"
JWT_SCOPES_ENV = "FEDSAGE_KYMA_JWT_SCOPES"
ALLOW_UNAUTHENTICATED_ENV = "FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED"


@dataclass(frozen=True)
class Access:
    """The access rule of the APIRule (see :class:`fedsage.kyma.cluster.manifests.KymaSpec`)."""

    jwt_issuer: str | None = None
    jwks_uri: str | None = None
    jwt_audiences: tuple[str, ...] = ()
    jwt_scopes: tuple[str, ...] = ()
    allow_unauthenticated: bool = False


def _listed(variable: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(variable, "").split(",") if item.strip())


def access_from_env() -> Access:
    """Read the access settings from the environment.

    Returns
    -------
    Access
        ``jwt`` access (issuer, JWKS URI, audiences, scopes) or the ``noAuth`` opt-in.

    Raises
    ------
    ConfigurationError
        When neither is configured, only one of issuer and JWKS URI is, or audiences or
        scopes are set without jwt access.
    """
    issuer, jwks = os.environ.get(JWT_ISSUER_ENV), os.environ.get(JWKS_URI_ENV)
    audiences, scopes = _listed(JWT_AUDIENCES_ENV), _listed(JWT_SCOPES_ENV)
    allow = os.environ.get(ALLOW_UNAUTHENTICATED_ENV, "").strip().lower() in ("1", "true", "yes")
    if bool(issuer) != bool(jwks):
        raise ConfigurationError(f"set both {JWT_ISSUER_ENV} and {JWKS_URI_ENV} for jwt access")
    if issuer and jwks:
        return Access(issuer, jwks, audiences, scopes)
    if audiences or scopes:
        raise ConfigurationError(
            f"{JWT_AUDIENCES_ENV} / {JWT_SCOPES_ENV} narrow jwt access: set {JWT_ISSUER_ENV} "
            f"and {JWKS_URI_ENV} as well"
        )
    if not allow:
        raise ConfigurationError(
            f"choose who may call the model: set {JWT_ISSUER_ENV} and {JWKS_URI_ENV} "
            f"(jwt access), or {ALLOW_UNAUTHENTICATED_ENV}=1 to expose it to anyone on the "
            "internet, as fedml-aws did"
        )
    logger.warning(
        "%s=1: the model will be reachable WITHOUT authentication by anyone on the internet",
        ALLOW_UNAUTHENTICATED_ENV,
    )
    return Access(allow_unauthenticated=True)
