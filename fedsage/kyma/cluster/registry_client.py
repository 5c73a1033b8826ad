"""A small client for the OCI Distribution API (Docker Registry HTTP API v2), on httpx.

It does what pushing and pulling an image needs and nothing more: probe ``/v2/``,
check blobs with ``HEAD``, mount blobs across repositories, upload blobs in chunks
(``PATCH`` with ``Content-Range``, then ``PUT ?digest=``), and put / get manifests.

Credentials are either none (a local registry), ``username`` + ``password``, or a
ready Basic token (Amazon ECR's ``authorizationToken`` already is base64 of
``AWS:<password>``).  The ``Authorization`` header is only ever sent to the registry's
own host: redirects to other hosts (blobs served from pre-signed storage URLs) are
followed without it.  Credentials go over plain ``http://`` only to a loopback
registry (127.0.0.1, ::1, localhost).  Credentials never appear in a repr, a log line or
an error.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from ...errors import ConfigurationError, DeploymentError
from .._hosts import is_loopback
from ..names import REPOSITORY_RE

__all__ = ["DEFAULT_CHUNK_SIZE", "REPOSITORY_RE", "TAG_RE", "RegistryClient"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 8 << 20
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_MAX_REDIRECTS = 5


def _error_detail(response: httpx.Response) -> str:
    """Summarise a registry error body (``{"errors": [{code, message}]}``)."""
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError):
        text = ""
    return text or f"HTTP {response.status_code}"


class RegistryClient:
    """Talk to one registry host.

    Parameters
    ----------
    url : str
        The registry's base URL, e.g. ``http://127.0.0.1:5000`` or
        ``https://123456789012.dkr.ecr.eu-central-1.amazonaws.com``; ``http://`` with
        credentials only for a loopback host.
    username, password : str, default=None
        Basic credentials.
    token : str, default=None
        A ready Basic token (base64 of ``user:password``), e.g. ECR's
        ``authorizationToken``.  Mutually exclusive with ``username``/``password``.
    chunk_size : int, default=8 MiB
        Size of each ``PATCH`` of a chunked upload.
    timeout : float, default=60.0
        Network timeout per request, in seconds.
    transport : httpx.BaseTransport, default=None
        Custom transport (tests).
    event_hooks : mapping, default=None
        httpx event hooks, e.g. ``{"request": [callback]}`` to count requests.

    Raises
    ------
    DeploymentError
        If ``url`` is not an ``http(s)://host[:port]`` URL.
    ConfigurationError
        If credentials would go over plain ``http://`` to a host that is not loopback.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        if token is not None and (username is not None or password is not None):
            raise ValueError("pass either token or username/password, not both")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive; got {chunk_size}")
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DeploymentError(f"registry URL {url!r} must look like https://host[:port]")
        credentials = token is not None or username is not None
        if credentials and parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise ConfigurationError(
                f"refusing to send registry credentials to {parts.scheme}://{parts.netloc} "
                "over plain http; use https:// (plain http is allowed only for a registry "
                "on 127.0.0.1, ::1 or localhost)"
            )
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.chunk_size = chunk_size
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        self.__authorization = f"Basic {token}" if token else None
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            event_hooks=dict(event_hooks or {}),
        )

    def __repr__(self) -> str:
        auth = "***" if self.__authorization else "none"
        return f"RegistryClient({self.url!r}, auth={auth})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request, following redirects without leaking credentials."""
        target = urljoin(self.url + "/", url)
        for _ in range(_MAX_REDIRECTS + 1):
            sent = dict(headers or {})
            if self.__authorization and urlsplit(target).netloc == self.host:
                sent["Authorization"] = self.__authorization
            try:
                request = self._client.build_request(method, target, headers=sent, content=content)
                response = self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise DeploymentError(
                    f"cannot reach the registry {self.url} ({method} {urlsplit(target).path}): "
                    f"{type(exc).__name__}; check the URL and the network"
                ) from exc
            if method in ("GET", "HEAD") and response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                response.close()
                if not location:
                    break
                target = urljoin(target, location)
                continue
            return response
        raise DeploymentError(f"too many redirects from the registry {self.url} for {url}")

    def _fail(self, response: httpx.Response, what: str) -> DeploymentError:
        if not response.is_stream_consumed:
            response.read()
        detail = _error_detail(response)
        hint = ""
        if response.status_code in (401, 403):
            hint = "; the registry refused the credentials (an ECR token lasts 12 hours)"
        return DeploymentError(f"{what} failed at {self.url}: {detail}{hint}")

    @staticmethod
    def _with_query(url: str, **params: str) -> str:
        return url + ("&" if "?" in url else "?") + urlencode(params)

    # -- API ----------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry speaks the v2 API and accepts the credentials."""
        response = self._request("GET", "/v2/")
        if response.status_code != 200:
            raise self._fail(response, "GET /v2/")

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` already has the blob ``digest``."""
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"HEAD blob {digest} in {repository}")

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> str | None:
        """Try to mount ``digest`` from ``source_repository`` of the same registry.

        Returns
        -------
        str or None
            ``None`` when the registry mounted the blob (201); otherwise the upload URL
            of the session it opened instead (202), to be used for an ordinary upload.
        """
        query = urlencode({"mount": digest, "from": source_repository})
        response = self._request("POST", f"/v2/{repository}/blobs/uploads/?{query}")
        if response.status_code == 201:
            logger.info("mounted %s into %s from %s", digest, repository, source_repository)
            return None
        if response.status_code == 202 and response.headers.get("Location"):
            return urljoin(self.url + "/", response.headers["Location"])
        raise self._fail(response, f"mount of {digest} into {repository}")

    def start_upload(self, repository: str) -> str:
        """Open an upload session and return its URL."""
        response = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        if response.status_code != 202 or not response.headers.get("Location"):
            raise self._fail(response, f"starting an upload to {repository}")
        return urljoin(self.url + "/", response.headers["Location"])

    def upload_blob(
        self,
        repository: str,
        path: Path,
        digest: str,
        *,
        upload_url: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Upload the file ``path`` as blob ``digest``, in chunks when it is large.

        The file is hashed while it is sent; if it does not match ``digest`` the
        session is cancelled before the final ``PUT``, so nothing is committed.

        Raises
        ------
        DeploymentError
            If the content does not match ``digest`` or the registry refuses it.
        """
        url = upload_url or self.start_upload(repository)
        sha = hashlib.sha256()
        offset = 0
        octets = {"Content-Type": "application/octet-stream"}
        last = b""
        with open(path, "rb") as handle:
            chunk = handle.read(self.chunk_size)
            while chunk:
                sha.update(chunk)
                following = handle.read(self.chunk_size)
                if not following and offset == 0:
                    last = chunk  # small blob: one monolithic PUT below
                    break
                headers = {
                    **octets,
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    "Content-Length": str(len(chunk)),
                }
                response = self._request("PATCH", url, headers=headers, content=chunk)
                if response.status_code != 202:
                    raise self._fail(response, f"uploading {digest} to {repository}")
                url = urljoin(url, response.headers.get("Location", url))
                offset += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                chunk = following
        actual = "sha256:" + sha.hexdigest()
        if actual != digest:
            self._request("DELETE", url).close()
            raise DeploymentError(
                f"{path} does not match its digest {digest} (it hashes to {actual}); "
                "the file changed after the image was assembled: build the image again"
            )
        response = self._request(
            "PUT", self._with_query(url, digest=digest), headers=octets, content=last
        )
        if response.status_code != 201:
            raise self._fail(response, f"committing {digest} to {repository}")
        if on_bytes is not None and last:
            on_bytes(len(last))

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Put a manifest under a tag or digest; return the registry's digest for it."""
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            content=body,
        )
        if response.status_code != 201:
            raise self._fail(response, f"pushing the manifest {repository}:{reference}")
        expected = "sha256:" + hashlib.sha256(body).hexdigest()
        returned = response.headers.get("Docker-Content-Digest", expected)
        if returned != expected:
            raise DeploymentError(
                f"the registry stored {repository}:{reference} as {returned}, not {expected}"
            )
        return expected

    def manifest_digest(self, repository: str, reference: str, accept: list[str]) -> str | None:
        """Return the digest the registry has for ``reference``, or ``None``."""
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"HEAD manifest {repository}:{reference}")
        return response.headers.get("Docker-Content-Digest")

    def get_manifest(
        self, repository: str, reference: str, accept: list[str]
    ) -> tuple[bytes, str, str]:
        """Fetch a manifest; return ``(body, media type, digest)``."""
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code != 200:
            raise self._fail(response, f"GET manifest {repository}:{reference}")
        body = response.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise DeploymentError(f"manifest {repository}@{reference} hashes to {digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return body, media_type, digest

    def download_blob(self, repository: str, digest: str, dest: Path) -> Path:
        """Stream the blob ``digest`` into the file ``dest``, checking its digest."""
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", stream=True)
        try:
            if response.status_code != 200:
                raise self._fail(response, f"GET blob {digest} from {repository}")
            sha = hashlib.sha256()
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    sha.update(chunk)
                    out.write(chunk)
        finally:
            response.close()
        if "sha256:" + sha.hexdigest() != digest:
            dest.unlink()
            raise DeploymentError(f"blob {digest} from {self.url}/{repository} is corrupt")
        return dest

    def get_blob(self, repository: str, digest: str) -> bytes:
        """Return a (small) blob's bytes, checking its digest."""
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}")
        if response.status_code != 200:
            raise self._fail(response, f"GET blob {digest} from {repository}")
        if "sha256:" + hashlib.sha256(response.content).hexdigest() != digest:
            raise DeploymentError(f"blob {digest} from {self.url}/{repository} is corrupt")
        return response.content
