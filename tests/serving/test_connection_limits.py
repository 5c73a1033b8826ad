"""How long a client may hold a worker: the read timeout, the keep-alive timeout and
flow control for a client that sends requests without reading the answers.

The timeouts are checked against a real server with short limits; flow control against
the worker's real protocol and asyncio transport on a socket pair, in this process, so
the test can see what the worker has buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedsage.errors import ConfigurationError
from fedsage.runtimes.base import host_runtime
from fedsage.serving import create_endpoint, list_endpoints
from fedsage.serving._worker.fedsage_worker.protocol import (
    KEEPALIVE_TIMEOUT,
    READ_TIMEOUT,
    ConnectionLimits,
    HttpProtocol,
    WorkerServer,
    connection_limits,
)
from fedsage.serving._worker.fedsage_worker.service import BrokenService

from .conftest import Server, make_tar, running

PING = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LIMITS = {"FEDSAGE_READ_TIMEOUT": "1", "FEDSAGE_KEEPALIVE_TIMEOUT": "1.5"}


@pytest.fixture(scope="module")
def short_limits(tmp_path_factory: pytest.TempPathFactory, np_model_dir: Path):
    with running(tmp_path_factory.mktemp("srv-limits"), np_model_dir, env=LIMITS) as server:
        yield server


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_answer(sock: socket.socket) -> bytes:
    """One whole response (its head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    began = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - began
        data += chunk


# ---------------------------------------------------------------- settings


def test_defaults() -> None:
    assert connection_limits({}) == ConnectionLimits(READ_TIMEOUT, KEEPALIVE_TIMEOUT)
    assert connection_limits(LIMITS) == ConnectionLimits(1.0, 1.5)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
@pytest.mark.parametrize("name", ["FEDSAGE_READ_TIMEOUT", "FEDSAGE_KEEPALIVE_TIMEOUT"])
def test_bad_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a positive number of seconds"):
        connection_limits({name: value})


def test_create_endpoint_refuses_a_bad_setting(
    tmp_path: Path, np_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigurationError, match="FEDSAGE_KEEPALIVE_TIMEOUT must be a positive"):
        create_endpoint(
            "bad-limits",
            model_tar=make_tar(np_model_dir, tmp_path / "model.tar.gz"),
            code_tar=None,
            program="inference.py",
            runtime=host_runtime(),
            env={"FEDSAGE_KEEPALIVE_TIMEOUT": "soon"},
        )
    assert list_endpoints() == []
    assert not (tmp_path / "home" / "endpoints" / "bad-limits").exists()


def test_serve_refuses_a_bad_setting(np_model_dir: Path) -> None:
    """``fedsage serve`` checks them as ``create_endpoint`` does, before it listens."""
    done = subprocess.run(
        [sys.executable, "-m", "fedsage", "serve", str(np_model_dir), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FEDSAGE_READ_TIMEOUT": "-5"},
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FEDSAGE_READ_TIMEOUT must be a positive number" in done.stderr, done.stderr
    assert "worker" not in done.stderr, done.stderr  # refused before any process started


# ---------------------------------------------------------------- timeouts


def test_a_trickled_request_gets_408(short_limits: Server) -> None:
    """A byte every 0.2 s keeps the connection busy: only a deadline from the first
    byte (not a timeout between reads) ends it."""
    with _connect(short_limits) as sock:
        began = time.monotonic()
        answer = b""
        for byte in PING[:-4]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed after the 408 was sent
                break
            time.sleep(0.2)
            if time.monotonic() - began > 8:
                break
        answer, _ = _closed_within(sock, 10)
        took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:200]
    assert b"FEDSAGE_READ_TIMEOUT" in answer
    assert 1.0 <= took < 4.0, took


def test_an_idle_connection_is_closed(short_limits: Server) -> None:
    with _connect(short_limits) as sock:
        sock.sendall(PING)
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        rest, waited = _closed_within(sock, 10)
    assert rest == b""  # closed quietly, no 408 on a connection between requests
    assert 1.5 <= waited < 4.0, waited


def test_a_connection_in_use_stays_open(short_limits: Server) -> None:
    """Requests 0.5 s apart for 3 s (twice the keep-alive timeout), one connection."""
    with _connect(short_limits) as sock:
        for _ in range(7):
            sock.sendall(PING)
            assert _read_answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)


# ---------------------------------------------------------------- flow control


def test_a_client_that_reads_no_answers_is_not_read() -> None:
    """Requests pipelined without reading: the worker stops reading once its answers
    back up, holds a bounded amount, and answers every request once the client reads."""
    loop = asyncio.new_event_loop()
    server = WorkerServer(BrokenService("no model here"), limits=ConnectionLimits(60.0, 60.0))
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    theirs.setblocking(False)
    try:
        _, proto = loop.run_until_complete(
            loop.connect_accepted_socket(lambda: HttpProtocol(server), ours)
        )
        burst = PING * 100
        sent = 0
        idle_rounds = 0
        while sent < 4_000_000 and idle_rounds < 20:
            try:
                sent += theirs.send(burst)
                idle_rounds = 0
            except BlockingIOError:
                idle_rounds += 1
            loop.run_until_complete(asyncio.sleep(0.005))
        assert isinstance(proto, HttpProtocol)
        assert proto.paused, f"the worker kept reading: {sent} bytes of requests taken"
        assert sent < 1_000_000, sent
        assert len(proto.buf) <= 512 * 1024
        assert proto.transport.get_write_buffer_size() <= 128 * 1024

        expected = -(-sent // len(PING))  # a request cut by a full buffer is completed
        tail = PING[sent % len(PING) :] if sent % len(PING) else b""
        answers = b""
        deadline = time.monotonic() + 60
        while answers.count(b"HTTP/1.1 500 ") < expected:
            assert time.monotonic() < deadline, f"{answers.count(b'HTTP/1.1 500 ')} answers"
            if tail:
                with contextlib.suppress(BlockingIOError):
                    tail = tail[theirs.send(tail) :]
            try:
                chunk = theirs.recv(1 << 20)
            except BlockingIOError:
                loop.run_until_complete(asyncio.sleep(0.005))
                continue
            assert chunk, "the worker closed the connection"
            answers += chunk
        assert answers.count(b"HTTP/1.1 500 ") == expected
        assert not proto.paused and proto.idle()
    finally:
        theirs.close()
        ours.close()
        loop.close()
