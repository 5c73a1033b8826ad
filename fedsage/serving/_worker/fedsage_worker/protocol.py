"""HTTP/1.1 for one worker: request parsing with hard limits, rendering, the server loop.

``HttpProtocol`` is a plain ``asyncio.Protocol``: keep-alive, pipelining (answered in
order), ``Content-Length`` and chunked bodies, ``Expect: 100-continue``.  Every part of a
request is bounded before it is buffered: a line (request line, header, chunk size,
trailer) at ``MAX_LINE`` bytes, the head at ``MAX_HEAD`` bytes, the body (the sum of the
chunks when chunked) at the server's ``max_body``.  So is the time a client may hold a
connection (``ConnectionLimits``): a request must arrive whole within the read timeout
of its first byte (408 after), and a connection with nothing in progress closes after
the keep-alive timeout.  A client that sends requests without reading the answers
stops being read once the answers waiting for it pass asyncio's write-buffer mark, so
a worker never holds more than about one request and that buffer for it.  A server on
a loopback address answers only requests whose ``Host`` names it
(``WorkerServer.hosts``), so that a web page cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import signal
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

from . import DEFAULT_MAX_BODY
from .framing import recv_message
from .response import HttpError, Response, error_response

if TYPE_CHECKING:
    from .service import BrokenService, Service

log = logging.getLogger("fedsage.worker")

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
#: The longest line (request line, header line, chunk-size line, trailer line), CRLF excluded.
MAX_LINE = 8 * 1024
#: The largest request head (request line and headers), and the largest trailer section.
MAX_HEAD = 64 * 1024
#: ``Host`` names a loopback server always answers (``[::1]`` is written without brackets).
LOOPBACK_NAMES = ("localhost", "localhost.", "127.0.0.1", "::1")

_ROUTES = {
    b"/ping": (b"GET", b"HEAD"),
    b"/invocations": (b"POST",),
    b"/execution-parameters": (b"GET", b"HEAD"),
}
_ERROR_NAMES = {
    400: "BadRequest",
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    421: "MisdirectedRequest",
    431: "HeadersTooLarge",
    501: "NotImplemented",
}
_SINGLE = frozenset((b"host", b"content-length", b"transfer-encoding"))
_HEX = b"0123456789abcdefABCDEF"


#: Seconds from a request's first byte to its last (``FEDSAGE_READ_TIMEOUT``).
READ_TIMEOUT = 60.0
#: Seconds a connection may wait for its next request (``FEDSAGE_KEEPALIVE_TIMEOUT``);
#: longer than the 60 s idle time of common client pools, so a pool rarely reuses a
#: connection the server is closing.
KEEPALIVE_TIMEOUT = 75.0


class ConnectionLimits(NamedTuple):
    """How long a worker waits on a client (seconds).

    Attributes
    ----------
    read_timeout : float
        From the first byte of a request to its last; a request still incomplete then
        is answered 408 and its connection closed.  It bounds a client that trickles a
        request a byte at a time, which a timeout between reads would not.
    keepalive_timeout : float
        How long a connection with no request in progress (or whose client reads none
        of the answers) stays open.
    """

    read_timeout: float = READ_TIMEOUT
    keepalive_timeout: float = KEEPALIVE_TIMEOUT


def connection_limits(env: Mapping[str, str]) -> ConnectionLimits:
    """The limits set by ``FEDSAGE_READ_TIMEOUT`` and ``FEDSAGE_KEEPALIVE_TIMEOUT``.

    Raises
    ------
    ValueError
        When a variable is set to anything but a positive number of seconds.
    """
    values = []
    for name, default in (
        ("FEDSAGE_READ_TIMEOUT", READ_TIMEOUT),
        ("FEDSAGE_KEEPALIVE_TIMEOUT", KEEPALIVE_TIMEOUT),
    ):
        text = env.get(name, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            value = -1.0
        if not value > 0 or value == float("inf"):
            raise ValueError(
                f"{name} must be a positive number of seconds, not {text!r}; "
                f"unset it for {default:g}s"
            )
        values.append(value)
    return ConnectionLimits(*values)


def allowed_hosts(setting: str | None) -> frozenset[bytes] | None:
    """The ``Host`` names a worker answers, from ``FEDSAGE_ALLOWED_HOSTS``.

    Parameters
    ----------
    setting : str or None
        ``*``: any name (a server on a non-loopback address); otherwise a comma list of
        names added to ``LOOPBACK_NAMES`` (the supervisor adds the bind host).  Unset or
        empty means ``LOOPBACK_NAMES`` alone.

    Returns
    -------
    frozenset of bytes or None
        Lower-case names without port or brackets; None when any name is accepted.
    """
    if setting is not None and setting.strip() == "*":
        return None
    names = set(LOOPBACK_NAMES)
    for item in (setting or "").split(","):
        item = item.strip().lower()
        if item.startswith("[") and item.endswith("]"):
            item = item[1:-1]
        if item:
            names.add(item)
    return frozenset(name.encode("utf-8") for name in names)


def host_name(value: bytes) -> bytes | None:
    """The name in a ``Host`` value (``name``, ``name:port``, ``[v6]:port``), lower case.

    Returns None when the value is malformed (no name, a port that is not a number).
    """
    value = value.lower()
    if value.startswith(b"["):
        end = value.find(b"]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
    else:
        colon = value.find(b":")
        name, rest = (value, b"") if colon < 0 else (value[:colon], value[colon:])
    if not name or (rest and (rest[:1] != b":" or not (rest[1:].isdigit() or rest == b":"))):
        return None
    return name


def render(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    """The bytes of a response (``Connection: close`` unless ``keep_alive``)."""
    body = response.get_data()
    status = response.status_code
    if status == 204:  # RFC 9110: no content, so neither a body nor its length
        body = b""
        head = f"HTTP/1.1 204 {REASONS[204]}\r\n"
    else:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(body)}\r\n"
        )
    for name, value in response.headers.items():
        if name.lower() not in ("content-type", "content-length", "connection"):
            head += f"{name}: {value}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    raw = (head + "\r\n").encode("latin-1")
    return raw if head_only else raw + body


def _too_large(limit: int) -> HttpError:
    return HttpError(413, f"the body is larger than the limit of {limit} bytes")


def _line_end(buf: bytearray, what: str, status: int) -> int:
    """Where the line at the start of ``buf`` ends (-1: not yet), refusing long lines."""
    eol = buf.find(b"\r\n", 0, MAX_LINE + 2)
    if eol < 0 and len(buf) >= MAX_LINE + 2:
        raise HttpError(status, f"{what} is longer than {MAX_LINE} bytes")
    return eol


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    if not size or size.strip(_HEX):
        raise HttpError(400, "malformed chunk-size line")
    return int(size, 16)


_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class ChunkedBody:
    """A chunked request body, decoded as it arrives.

    ``feed`` consumes what it can from the start of the connection's buffer, so memory
    stays within the body limit plus one line whatever the chunk sizes.

    Parameters
    ----------
    limit : int
        The largest body (the sum of the chunk sizes); 413 above.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.left = 0  # bytes of the current chunk still to come
        self.state = _SIZE
        self.trailer = 0  # bytes of trailer lines so far

    def feed(self, buf: bytearray) -> bool:
        """Consume from ``buf``; True once the whole body (and its trailers) is read.

        Raises
        ------
        HttpError
            400 for a malformed or too long chunk-size line or a chunk without its CRLF,
            413 when the chunks add up to more than the limit, 431 for too large trailers.
        """
        while True:
            if self.state == _SIZE:
                eol = _line_end(buf, "a chunk-size line", 400)
                if eol < 0:
                    return False
                size = _chunk_size(bytes(buf[:eol]))
                del buf[: eol + 2]
                if size == 0:
                    self.state = _TRAILER
                elif self.size + size > self.limit:
                    raise _too_large(self.limit)
                else:
                    self.size += size
                    self.left = size
                    self.state = _DATA
            elif self.state == _DATA:
                if not buf:
                    return False
                n = min(self.left, len(buf))
                self.parts.append(bytes(buf[:n]))
                del buf[:n]
                self.left -= n
                if self.left:
                    return False
                self.state = _DATA_END
            elif self.state == _DATA_END:
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise HttpError(400, "a chunk is longer than its chunk-size line says")
                del buf[:2]
                self.state = _SIZE
            else:
                eol = _line_end(buf, "a trailer line", 431)
                if eol < 0:
                    return False
                self.trailer += eol + 2
                if self.trailer > MAX_HEAD:
                    raise HttpError(431, f"the trailers are larger than {MAX_HEAD} bytes")
                del buf[: eol + 2]
                if eol == 0:
                    return True

    def body(self) -> bytes:
        """The decoded body."""
        return b"".join(self.parts)


def _check_partial_head(buf: bytearray) -> None:
    """Refuse a head that cannot become valid, before buffering any more of it."""
    if _line_end(buf, "the request line", 400) < 0:
        return
    if len(buf) > MAX_HEAD:
        raise HttpError(431, f"the request head is larger than {MAX_HEAD} bytes")
    if len(buf) - buf.rfind(b"\r\n") - 2 >= MAX_LINE + 2:
        raise HttpError(431, f"a header line is longer than {MAX_LINE} bytes")


def _check_line_lengths(lines: list[bytes]) -> None:
    if len(lines[0]) > MAX_LINE:
        raise HttpError(400, f"the request line is longer than {MAX_LINE} bytes")
    for line in lines[1:]:
        if len(line) > MAX_LINE:
            raise HttpError(431, f"a header line is longer than {MAX_LINE} bytes")


def _check_repeats(lines: list[bytes]) -> None:
    """Refuse a second Host, Content-Length or Transfer-Encoding (ambiguous framing)."""
    seen = set()
    for line in lines[1:]:
        name = line.partition(b":")[0].lower()
        if name in _SINGLE:
            if name in seen:
                raise HttpError(400, f"more than one {name.decode('latin-1')} header")
            seen.add(name)


# After each response, let whoever that response woke (a client or proxy on the same
# cores: the notebook, a sidecar, a load generator) run before the next request here.
# Under saturation a worker otherwise keeps the CPU for a whole scheduler slice while
# the client waits (docs/serving.md has the measurements).  It returns at once when
# nothing else is runnable.
_yield_cpu: Callable[[], Any] = getattr(os, "sched_yield", lambda: None)


#: How many distinct request heads a worker keeps parsed, each of at most
#: ``_HEAD_CACHE_BYTES`` (a client's usual head is 100-400 bytes): 256 KiB at most.
_HEAD_CACHE = 256
_HEAD_CACHE_BYTES = 1024


def parse_head(raw: bytes) -> tuple[bytes, bytes, bytes, dict[bytes, bytes]]:
    """``(method, target, version, headers)`` of a request head (CRLFs, no blank line).

    Header names are lower case, values stripped.

    Raises
    ------
    HttpError
        400 for a malformed request line or header line, or a repeated ``Host``,
        ``Content-Length`` or ``Transfer-Encoding``; 400/431 for a line over ``MAX_LINE``.
    """
    lines = raw.split(b"\r\n")
    if len(raw) > MAX_LINE:  # only then can a line be too long
        _check_line_lengths(lines)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if len(headers) < len(lines) - 1:  # some name came twice
        _check_repeats(lines)
    return method, target, version, headers


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order, synchronously."""

    def __init__(self, server: WorkerServer) -> None:
        self.server = server
        self.transport: Any = None
        self.buf = bytearray()
        self.last = time.monotonic()  # when the client last sent or read something
        self.began: float | None = None  # when the request in progress began to arrive
        self.paused = False  # the client is not reading: neither read nor answer more
        self.continued = False
        self.scanned = 0  # where in buf to go on looking for the end of the head
        self.host: bytes | None = None  # the last Host value accepted on this connection
        # The request whose head is read and whose body is still coming:
        self.request: tuple[bytes, bytes, bytes, dict[bytes, bytes]] | None = None
        self.start = 0  # where its Content-Length body starts in buf
        self.length = 0  # its Content-Length
        self.chunks: ChunkedBody | None = None  # or its chunked body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last = now = time.monotonic()
        if self.began is None:
            self.began = now
        self.buf += data
        self._serve()

    def pause_writing(self) -> None:
        # The answers waiting for this client passed the transport's mark: stop reading
        # its requests (and answering them) until it has read them.
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.last = time.monotonic()
        if self.transport is not None:
            self.transport.resume_reading()
            self._serve()

    def _serve(self) -> None:
        """Answer the complete requests in the buffer, in order, while the client reads."""
        try:
            while (
                self.transport is not None and self.buf and not self.paused and self._one_request()
            ):
                pass
        except HttpError as exc:
            self._send_error(exc.status, exc.message)
        except Exception:
            log.exception("cannot parse a request")
            self._send_error(400, "malformed request")
        if self.idle():
            self.began = None

    def idle(self) -> bool:
        """True between requests (nothing buffered, no body on its way)."""
        return not self.buf and self.request is None

    def expire(self, now: float, limits: ConnectionLimits) -> None:
        """Close the connection if its client has overstayed ``limits`` at ``now``."""
        transport = self.transport
        if transport is None:
            return
        if self.paused:
            if now - self.last > limits.keepalive_timeout:
                log.info("closing a connection whose client reads no answers")
                transport.abort()  # close() would wait for the client to read
                self.transport = None
        elif self.began is not None:
            if now - self.began > limits.read_timeout:
                self._send_error(
                    408,
                    f"the request did not arrive within {limits.read_timeout:g}s of its "
                    "first byte; send it whole, or raise FEDSAGE_READ_TIMEOUT",
                )
        elif now - self.last > limits.keepalive_timeout:
            transport.close()
            self.transport = None

    def _send_error(self, status: int, message: str) -> None:
        if self.transport is not None:
            response = error_response(status, _ERROR_NAMES.get(status, "Error"), message)
            self.transport.write(render(response, False))
            self.transport.close()
            self.transport = None

    def _one_request(self) -> bool:
        buf = self.buf
        request = self.request
        if request is None:
            request = self.request = self._read_head()
            if request is None:
                return False
        method, target, version, headers = request
        chunks = self.chunks
        if chunks is None:
            end = self.start + self.length  # the head stays in buf until the body is in
            if len(buf) < end:
                self._continue(headers)
                return False
            body = bytes(buf[self.start : end])
            del buf[:end]
        else:
            if not chunks.feed(buf):
                self._continue(headers)
                return False
            body = chunks.body()
            self.chunks = None
        self.request = None
        self.continued = False
        conn = headers.get(b"connection", b"").lower()
        keep_alive = (conn != b"close") if version == b"HTTP/1.1" else (conn == b"keep-alive")
        keep_alive = keep_alive and not self.server.draining
        response = self.server.dispatch(method, target, headers, body)
        self.transport.write(render(response, keep_alive, method == b"HEAD"))
        self.last = self.began = time.monotonic()  # the next request, if any, begins now
        _yield_cpu()
        if not keep_alive:
            self.transport.close()
            self.transport = None
            return False
        return True

    def _continue(self, headers: dict[bytes, bytes]) -> None:
        if headers.get(b"expect", b"").lower() == b"100-continue" and not self.continued:
            self.continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _read_head(self) -> tuple[bytes, bytes, bytes, dict[bytes, bytes]] | None:
        """Parse the head at the start of the buffer (None: not complete yet).

        Sets how the body is framed: ``self.start`` and ``self.length`` for a
        ``Content-Length`` body, else ``self.chunks`` (the head is then dropped from the
        buffer, which the chunked decoder consumes from its start).
        """
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n", self.scanned)
        if head_end < 0:
            self.scanned = max(0, len(buf) - 3)
            _check_partial_head(buf)
            return None
        self.scanned = 0
        if head_end + 4 > MAX_HEAD:
            raise HttpError(431, f"the request head is larger than {MAX_HEAD} bytes")
        raw = bytes(buf[:head_end])
        heads = self.server.heads
        parsed = heads.get(raw)
        if parsed is None:
            parsed = parse_head(raw)
            if len(raw) <= _HEAD_CACHE_BYTES:
                if len(heads) >= _HEAD_CACHE:
                    heads.clear()
                heads[raw] = parsed
        method, target, version, headers = parsed
        host = headers.get(b"host")
        if host is None or host != self.host:  # checked once per connection and name
            self._check_host(host, version)
        encoding = headers.get(b"transfer-encoding")
        if encoding is None:
            length = headers.get(b"content-length", b"0")
            if not length.isdigit():
                raise HttpError(400, "malformed Content-Length")
            self.length = int(length)
            if self.length > self.server.max_body:
                raise _too_large(self.server.max_body)
            self.start = head_end + 4
        else:
            codings = [c.strip() for c in encoding.lower().split(b",") if c.strip()]
            if not codings or codings[-1] != b"chunked":
                raise HttpError(400, "a request's Transfer-Encoding must end with chunked")
            if len(codings) > 1:
                raise HttpError(501, "only the chunked transfer coding is supported")
            del buf[: head_end + 4]
            self.chunks = ChunkedBody(self.server.max_body)
        return method, target, version, headers

    def _check_host(self, host: bytes | None, version: bytes) -> None:
        if host is None:
            if version == b"HTTP/1.1":  # RFC 9112, section 3.2
                raise HttpError(400, "an HTTP/1.1 request needs a Host header")
            return
        name = host_name(host)
        if name is None:
            raise HttpError(400, "malformed Host header")
        hosts = self.server.hosts
        if hosts is not None and name not in hosts:
            shown = host.decode("latin-1")
            shown = shown if len(shown) <= 100 else shown[:97] + "..."
            raise HttpError(
                421,
                f"this server answers only requests for "
                f"{', '.join(self.server.host_list)} (a guard against DNS "
                f"rebinding), not Host {shown!r}; call it by one of those "
                f"names, or bind a non-loopback address to accept any name",
            )
        self.host = host


class WorkerServer:
    """Routes requests to a service, applies the per-request timeout, drains on SIGTERM.

    Parameters
    ----------
    service : Service or BrokenService
        Answers the requests.
    timeout : float, default=60.0
        Seconds a request may take (504 after).
    max_body : int
        The largest request body in bytes (413 above).
    hosts : frozenset of bytes or None
        The ``Host`` names answered (see ``allowed_hosts``); None: any name.
    limits : ConnectionLimits
        How long a client may take to send a request, and keep a connection idle.
    """

    def __init__(
        self,
        service: Service | BrokenService,
        timeout: float = 60.0,
        max_body: int = DEFAULT_MAX_BODY,
        hosts: frozenset[bytes] | None = allowed_hosts(None),
        limits: ConnectionLimits = ConnectionLimits(),
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.max_body = max_body
        self.hosts = hosts
        self.limits = limits
        self.host_list = sorted(f"[{n.decode()}]" if b":" in n else n.decode() for n in hosts or ())
        self.connections: set[HttpProtocol] = set()
        self.draining = False
        self.deadline: float | None = None  # of the request being answered
        self.armed = False  # a SIGALRM is pending
        # Parsed request heads by their bytes: a keep-alive client sends the same head
        # again and again (only Content-Length changes with the body).  Never mutated.
        self.heads: dict[bytes, tuple[bytes, bytes, bytes, dict[bytes, bytes]]] = {}

    def expire(self, now: float) -> None:
        """Close the connections whose clients overstayed the limits."""
        for proto in list(self.connections):
            proto.expire(now, self.limits)

    def dispatch(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> Response:
        """Answer one request (routing, 404/405, the timeout); never raises."""
        path = target.split(b"?", 1)[0]
        allowed = _ROUTES.get(path)
        if allowed is None:
            return error_response(
                404,
                "NotFound",
                "no such path; the server answers /ping, /invocations and /execution-parameters",
            )
        if method not in allowed:
            names = " or ".join(m.decode() for m in allowed)
            response = error_response(405, "MethodNotAllowed", f"use {names}")
            response.headers["Allow"] = ", ".join(m.decode() for m in allowed)
            return response
        # One alarm serves many requests: it is armed only when none is pending, and
        # on_alarm re-arms it for the request then running (two system calls a request
        # saved, a tenth of a one-row request's own time).
        self.deadline = time.monotonic() + self.timeout
        if not self.armed:
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            if path == b"/invocations":
                content_type = headers.get(b"contenttype") or headers.get(b"content-type")
                accept = headers.get(b"accept")
                return self.service.invoke(
                    body,
                    content_type.decode("latin-1") if content_type else None,
                    accept.decode("latin-1") if accept else None,
                )
            if path == b"/ping":
                return self.service.ping()
            return self.service.execution_parameters()
        except Timeout:
            log.error("request timed out after %ss", self.timeout)
            return error_response(
                504, "Timeout", f"the model did not answer within {self.timeout}s"
            )
        finally:
            self.deadline = None

    def on_alarm(self, signum: int, frame: Any) -> None:
        """SIGALRM: end the running request if it is past its deadline, else wait on."""
        self.armed = False
        deadline = self.deadline
        if deadline is None:  # armed by a request that has ended
            return
        left = deadline - time.monotonic()
        if left > 0:
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, left)
            return
        raise Timeout()


class Timeout(BaseException):
    """Raised by SIGALRM in the middle of a request that took too long."""


async def _drain(server: WorkerServer, grace: float) -> None:
    loop = asyncio.get_event_loop()
    deadline = loop.time() + grace
    while server.connections and loop.time() < deadline:
        for proto in list(server.connections):
            if proto.idle() and proto.transport is not None:
                proto.transport.close()
        await asyncio.sleep(0.05)


def beat(heartbeat: tuple[mmap.mmap, int] | None) -> None:
    """Write the time into this worker's heartbeat slot."""
    if heartbeat is not None:
        struct.pack_into("d", heartbeat[0], heartbeat[1] * 8, time.monotonic())


def _take_connections(
    loop: asyncio.AbstractEventLoop, channel: socket.socket, server: WorkerServer
) -> Callable[[], None]:
    """Serve the connections the zygote hands over on ``channel``; return a stop function."""
    channel.setblocking(False)

    def receive() -> None:
        while True:
            try:
                words, fds = recv_message(channel)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                words, fds = [], []
            if not words:  # the zygote is gone; tick() notices and stops the worker
                loop.remove_reader(channel.fileno())
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                loop.create_task(loop.connect_accepted_socket(lambda: HttpProtocol(server), conn))

    def stop() -> None:
        if channel.fileno() >= 0:
            loop.remove_reader(channel.fileno())
            channel.close()

    loop.add_reader(channel.fileno(), receive)
    return stop


def run(
    sock: socket.socket | None,
    service: Service | BrokenService,
    timeout: float,
    max_body: int,
    grace: float = 10.0,
    heartbeat: tuple[mmap.mmap, int] | None = None,
    channel: socket.socket | None = None,
    hosts: frozenset[bytes] | None = allowed_hosts(None),
    limits: ConnectionLimits = ConnectionLimits(),
) -> None:
    """Serve until SIGTERM/SIGINT or the parent's death.

    Connections come from the listening socket ``sock`` (a plain worker's own, bound by
    the supervisor with ``SO_REUSEPORT``) or, when ``channel`` is given, from the zygote,
    which hands each accepted connection over that socket.  ``heartbeat`` is
    ``(shared_mmap, slot)``: the time written there every 0.5 s lets the zygote tell a
    hung worker from a busy one, and hand new connections to idle workers first.
    ``hosts`` are the ``Host`` names answered (None: any); ``limits`` how long a client
    may take (checked with the heartbeat, so up to 0.5 s late).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = WorkerServer(service, timeout, max_body, hosts, limits)
    stop = loop.create_future()
    parent = os.getppid()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    def tick() -> None:
        if os.getppid() != parent:
            log.warning("parent %s is gone; stopping", parent)
            request_stop()
            return
        beat(heartbeat)
        server.expire(time.monotonic())
        loop.call_later(0.5, tick)

    signal.signal(signal.SIGALRM, server.on_alarm)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    stop_accepting: Callable[[], None]
    if channel is None:
        assert sock is not None
        sock.setblocking(False)
        listener = loop.run_until_complete(
            loop.create_server(lambda: HttpProtocol(server), sock=sock, backlog=1024)
        )
        stop_accepting = listener.close
    else:
        stop_accepting = _take_connections(loop, channel, server)
    beat(heartbeat)
    loop.call_later(0.5, tick)
    log.info("worker %d ready", os.getpid())
    loop.run_until_complete(stop)
    stop_accepting()
    server.draining = True
    loop.run_until_complete(_drain(server, grace))
    loop.close()
