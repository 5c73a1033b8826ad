"""``invoke_kyma_endpoint``: call a model deployed with ``deploy_to_kyma`` (cluster or local).

fedml-aws posted the payload to the URL given (``requests.post(api, data=payload,
headers={Content-Type, Accept})``) and returned the response; users passed the printed
``https://<name>.<domain>`` plus ``/invocations``.  fedsage does the same with httpx and
also accepts the printed base URL as is: a URL without a path (or with ``/``) gets
``/invocations`` appended.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..errors import ConfigurationError, EndpointError
from ._hosts import is_loopback

__all__ = ["CONTENT_TYPES", "TOKEN_ENV", "invocation_url", "invoke_kyma_endpoint"]

CONTENT_TYPES = ("text/csv", "application/json", "application/x-npy")
TOKEN_ENV = "FEDSAGE_KYMA_TOKEN"  # noqa: S105 - the name of a variable, not a secret
_local = threading.local()


def _client() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0))
        _local.client = client
    return client


def invocation_url(api: str) -> str:
    """Return the URL to POST to: ``api`` itself, or ``api + '/invocations'`` for a bare host.

    Raises
    ------
    ConfigurationError
        If ``api`` is not an ``http(s)://`` URL.
    """
    if not isinstance(api, str):
        raise ConfigurationError(f"api must be a URL string; got {type(api).__name__}")
    parts = urlsplit(api.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"api {api!r} is not a URL; pass the URL deploy_to_kyma returned "
            "(https://<name>.<domain> or http://127.0.0.1:<port> for a local deployment)"
        )
    path = parts.path if parts.path not in ("", "/") else "/invocations"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _check_token_target(url: str) -> None:
    """Refuse to send the bearer token in clear text to another machine."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
        host = parts.netloc.rpartition("@")[2]  # never echo credentials written into the URL
        shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
        raise ConfigurationError(
            f"refusing to send {TOKEN_ENV} to {shown}: over plain http anyone on the way can "
            "read the token; use the https:// URL deploy_to_kyma returned (http is allowed "
            f"only for 127.0.0.1, ::1 and localhost), or unset {TOKEN_ENV}"
        )


def _media(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower() if isinstance(content_type, str) else ""
    if media not in CONTENT_TYPES:
        raise ConfigurationError(
            f"content_type {content_type!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
        )
    return media


def _body(media: str, payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if media == "application/json" and isinstance(payload, dict | list):
        return json.dumps(payload).encode("utf-8")
    if media == "application/x-npy" and type(payload).__name__ == "ndarray":
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, payload, allow_pickle=False)
        return buffer.getvalue()
    raise ConfigurationError(
        f"payload of type {type(payload).__name__} cannot be sent as {media}; pass str or "
        "bytes (or a dict/list for JSON, a numpy array for npy)"
    )


def invoke_kyma_endpoint(
    api: str,
    content_type: str,
    payload_path: str | os.PathLike[str] | None = None,
    payload: Any = None,
    accept: str = "application/json",
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """POST a payload to a Kyma-deployed model and return the HTTP response.

    Parameters
    ----------
    api : str
        The URL ``deploy_to_kyma`` returned, with or without ``/invocations``.
    content_type : str
        ``text/csv``, ``application/json`` or ``application/x-npy``.
    payload_path : str or path-like, optional
        A file whose bytes are sent.  Exactly one of ``payload_path`` and ``payload``.
    payload : str or bytes, optional
        The data (``str`` is sent as UTF-8; a dict/list is JSON-encoded, a numpy array
        ``np.save``-d for the matching content type).
    accept : str, default="application/json"
        The ``Accept`` header.
    headers : mapping, optional
        Extra headers (e.g. ``Authorization``).  Without one, ``$FEDSAGE_KYMA_TOKEN``
        is sent as a bearer token when set (APIRules with ``jwt`` access), but only to
        an ``https://`` URL or a loopback address (127.0.0.1, ::1, localhost).
    timeout : float, optional
        Seconds to wait for the answer (default 120).

    Returns
    -------
    httpx.Response
        Whatever the model answered (``.status_code``, ``.content``, ``.json()``);
        a non-2xx status is returned, not raised, as fedml-aws did.

    Raises
    ------
    ConfigurationError
        If not exactly one payload is given, the content type is unsupported, the file
        is unreadable, ``api`` is not a URL, or ``$FEDSAGE_KYMA_TOKEN`` would go to a
        plain ``http://`` URL of another host.
    EndpointError
        If the endpoint cannot be reached.
    """
    if (payload_path is None) == (payload is None):
        raise ConfigurationError(
            "pass exactly one of payload_path (a file to send) and payload (the data)"
        )
    media = _media(content_type)
    url = invocation_url(api)
    if payload_path is not None:
        try:
            body = Path(payload_path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read payload_path {payload_path}: {exc}") from exc
    else:
        body = _body(media, payload)
    sent = {"Content-Type": content_type, "Accept": accept, **dict(headers or {})}
    token = os.environ.get(TOKEN_ENV)
    if token and not any(k.lower() == "authorization" for k in sent):
        _check_token_target(url)
        sent["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    try:
        return _client().post(url, content=body, headers=sent, **kwargs)
    except httpx.TransportError as exc:
        raise EndpointError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
