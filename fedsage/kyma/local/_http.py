"""Minimal HTTP/1.1 server-side framing on asyncio streams, for the local gateway.

Only what the gateway's listening side needs: read a request head, read a request body
(``Content-Length`` or chunked), and write a response with a ``Content-Length``.
Hop-by-hop headers are dropped.  The gateway's client side (towards the replicas) is
httpx.
"""

from __future__ import annotations

import asyncio
import json

__all__ = [
    "HOP_BY_HOP",
    "HttpError",
    "Message",
    "error_body",
    "read_body",
    "read_head",
    "render",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"content-length",
        b"host",
    }
)
Headers = list[tuple[bytes, bytes]]


class HttpError(Exception):
    """A request the gateway answers itself (``status`` and a short message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Message:
    """A parsed request head.

    Attributes
    ----------
    first : tuple of bytes
        The three parts of the request line: method, target, version.
    headers : list of (bytes, bytes)
        Header names lower-cased, values stripped, in order.
    """

    __slots__ = ("first", "headers")

    def __init__(self, first: tuple[bytes, bytes, bytes], headers: Headers) -> None:
        self.first = first
        self.headers = headers

    def get(self, name: bytes, default: bytes = b"") -> bytes:
        """The last value of header ``name`` (lower-case), or ``default``."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return default

    def keep_alive(self) -> bool:
        """Whether the client keeps the connection open after this request."""
        conn = self.get(b"connection").lower()
        if self.first[2] == b"HTTP/1.1":
            return b"close" not in conn
        return b"keep-alive" in conn


async def read_head(reader: asyncio.StreamReader) -> Message | None:
    """Read one request head; ``None`` on a clean EOF before any byte.

    Raises
    ------
    HttpError
        400 for a malformed head, 431 when it exceeds the stream limit.
    """
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    lines = raw[:-4].split(b"\r\n")
    while lines and not lines[0]:  # tolerate stray CRLF between messages
        lines.pop(0)
    parts = lines[0].split(b" ", 2) if lines else []
    if len(parts) == 2:
        parts.append(b"")
    if len(parts) != 3:
        raise HttpError(400, "malformed start line")
    headers: Headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers.append((name.lower(), value.strip()))
    return Message((parts[0], parts[1], parts[2]), headers)


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "malformed chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > limit:
            raise HttpError(413, f"body larger than {limit} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(reader: asyncio.StreamReader, head: Message, limit: int) -> bytes:
    """Read the request body that follows ``head`` (none without a length or chunking).

    Parameters
    ----------
    reader : asyncio.StreamReader
        The stream positioned after the head.
    head : Message
        The parsed head.
    limit : int
        Largest accepted body (413 above).
    """
    if b"chunked" in head.get(b"transfer-encoding").lower():
        return await _read_chunked(reader, limit)
    raw = head.get(b"content-length")
    if raw:
        try:
            length = int(raw)
        except ValueError:
            raise HttpError(400, "malformed Content-Length") from None
        if length < 0:
            raise HttpError(400, "malformed Content-Length")
        if length > limit:
            raise HttpError(413, f"body larger than {limit} bytes")
        return await reader.readexactly(length) if length else b""
    return b""


def render(first: bytes, headers: Headers, body: bytes, *, close: bool = False) -> bytes:
    """Serialise a message: start line, end-to-end headers, ``Content-Length``, body."""
    out = [first]
    out += [name + b": " + value for name, value in headers if name.lower() not in HOP_BY_HOP]
    out.append(b"Content-Length: %d" % len(body))
    if close:
        out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def error_body(status: int, message: str) -> tuple[Headers, bytes]:
    """A JSON error body like the model server's, with its headers."""
    body = json.dumps({"error": "GatewayError", "status": status, "message": message}).encode()
    return [(b"content-type", b"application/json")], body
