"""What a handler returns and how a failure becomes a one-line JSON answer."""

from __future__ import annotations

import json
from typing import Any

JSON = "application/json"


class Response:
    """A response a handler may return (same arguments as ``sagemaker_containers``'s).

    Parameters
    ----------
    response : bytes or str, optional
        The body.
    status : int, default=200
        The HTTP status code.
    headers : dict, optional
        Extra response headers.
    mimetype, content_type : str, optional
        The ``Content-Type`` (either name; default ``application/json``).
    """

    def __init__(
        self,
        response: Any = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        mimetype: str | None = None,
        content_type: str | None = None,
    ) -> None:
        self.response = response if response is not None else b""
        self.status_code = int(status)
        self.headers = dict(headers or {})
        self.content_type = content_type or mimetype or JSON

    def get_data(self) -> bytes:
        """Return the body as bytes."""
        return to_bytes(self.response)


class HttpError(Exception):
    """A failure with its status code; the message goes into a one-line JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def to_bytes(body: Any) -> bytes:
    """A response body as bytes (str is UTF-8; a list of parts is joined)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (list, tuple)) and all(isinstance(b, (bytes, str)) for b in body):
        return b"".join(to_bytes(b) for b in body)
    raise TypeError(f"cannot send a {type(body).__name__} as a response body")


def one_line(exc: BaseException) -> str:
    """``'ValueError: the text'`` on one line, at most 1,000 characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def error_response(status: int, error: str, message: str) -> Response:
    """A JSON ``{"error": ..., "message": ...}`` answer with ``status``."""
    body = json.dumps({"error": error, "message": message})
    return Response(body.encode("utf-8"), status, mimetype=JSON)
