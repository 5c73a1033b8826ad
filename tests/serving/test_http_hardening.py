"""Hostile requests over real sockets: unbounded lines, DNS rebinding, odd Accept lists.

Each payload ends exactly where the worker can refuse it, so the worker has read every
byte before it answers and closes (a close with unread bytes would reset the connection
and could swallow the answer).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fedsage.serving._worker.fedsage_worker.protocol import MAX_HEAD, MAX_LINE
from fedsage.serving.supervisor import ServerConfig, is_loopback_host, worker_env

from .conftest import Server, running

ROW = b"0.1,0.2,0.3,0.4"  # one row for the 4-feature model of default_server


def exchange(server: Server, payload: bytes) -> bytes:
    """Send ``payload``, close our side, return everything the server sent back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def status_and_reason(answer: bytes) -> tuple[int, dict[str, str]]:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(answer[9:12]), json.loads(body)


def chunked_head(host: bytes = b"127.0.0.1") -> bytes:
    return (
        b"POST /invocations HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: text/csv\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


# ---------------------------------------------------------------- lines and blocks


def test_request_line_without_end_is_400(default_server: Server) -> None:
    payload = b"GET /" + b"a" * (MAX_LINE - 3)  # MAX_LINE + 2 bytes and no CRLF
    status, reason = status_and_reason(exchange(default_server, payload))
    assert status == 400 and f"longer than {MAX_LINE} bytes" in reason["message"], reason


def test_request_line_too_long_is_400(default_server: Server) -> None:
    target = b"/ping?" + b"a" * MAX_LINE
    status, reason = status_and_reason(
        exchange(default_server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    )
    assert (status, reason["error"]) == (400, "BadRequest"), reason
    assert "request line" in reason["message"]


def test_header_line_without_end_is_431(default_server: Server) -> None:
    start = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    payload = start + b"a" * (MAX_LINE + 2 - len(b"X-Big: "))
    status, reason = status_and_reason(exchange(default_server, payload))
    assert (status, reason["error"]) == (431, "HeadersTooLarge"), reason
    assert f"longer than {MAX_LINE} bytes" in reason["message"]


def test_header_line_too_long_is_431(default_server: Server) -> None:
    big = b"X-Big: " + b"a" * (MAX_LINE + 1 - len(b"X-Big: "))  # one byte over
    payload = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        + big
        + b"\r\nContent-Length: 15\r\n\r\n"
        + ROW
    )
    status, reason = status_and_reason(exchange(default_server, payload))
    assert status == 431 and "header line" in reason["message"], reason
    # a line of exactly MAX_LINE bytes is still fine
    fine = payload.replace(big, big[:-1])
    assert exchange(default_server, fine).startswith(b"HTTP/1.1 200 OK")


def test_header_block_too_large_is_431(default_server: Server) -> None:
    start = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    line = b"X-Pad: " + b"a" * 90 + b"\r\n"
    n = (MAX_HEAD - len(start) - 2) // len(line)
    head = start + line * n
    head += b"X-End: " + b"b" * (MAX_HEAD + 1 - len(head) - 2 - 9) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD + 1  # complete exactly one byte over the limit
    status, reason = status_and_reason(exchange(default_server, head))
    assert status == 431 and f"larger than {MAX_HEAD} bytes" in reason["message"], reason


def test_chunk_size_line_without_end_is_400(default_server: Server) -> None:
    payload = chunked_head() + b"f" * (MAX_LINE + 2)
    status, reason = status_and_reason(exchange(default_server, payload))
    assert status == 400 and "chunk-size line" in reason["message"], reason


def test_chunk_extension_too_long_is_400(default_server: Server) -> None:
    payload = chunked_head() + b"f;" + b"x" * MAX_LINE  # a chunk-size line of MAX_LINE + 2
    status, reason = status_and_reason(exchange(default_server, payload))
    assert status == 400 and "chunk-size line" in reason["message"], reason


@pytest.mark.parametrize("size", [b"0xf", b"+f", b"0_f", b" ", b"f g"])
def test_malformed_chunk_size_is_400(default_server: Server, size: bytes) -> None:
    # int(size, 16) would accept the first three as 15, the length of ROW
    payload = chunked_head() + size + b"\r\n" + ROW + b"\r\n0\r\n\r\n"
    status, reason = status_and_reason(exchange(default_server, payload))
    assert (status, reason["message"]) == (400, "malformed chunk-size line"), reason


def test_unbounded_trailers_are_431(default_server: Server) -> None:
    payload = chunked_head() + b"f\r\n" + ROW + b"\r\n0\r\nX-T: " + b"y" * (MAX_LINE - 3)
    status, reason = status_and_reason(exchange(default_server, payload))
    assert status == 431 and "trailer line" in reason["message"], reason


def test_chunked_body_limit_is_the_sum_of_the_chunks(custom_server: Server) -> None:
    head = chunked_head().replace(b"text/csv", b"application/vnd.pipe")
    chunk = b"64\r\n" + b"1|" * 50 + b"\r\n"  # 100 bytes each; the server takes 1000
    status, reason = status_and_reason(exchange(custom_server, head + chunk * 10 + b"64\r\n"))
    assert status == 413 and "limit of 1000 bytes" in reason["message"], reason
    tiny = b"1\r\n1\r\n" * 1001  # many small chunks add up just the same
    status, reason = status_and_reason(exchange(custom_server, head + tiny))
    assert status == 413 and "limit of 1000 bytes" in reason["message"], reason


def test_chunked_body_still_works_in_small_pieces(default_server: Server) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (ROW[:3], ROW[3:9], ROW[9:]))
    payload = chunked_head() + body + b"0\r\nX-Trailer: ok\r\n\r\n"
    with socket.create_connection(("127.0.0.1", default_server.port), timeout=30) as sock:
        for i in range(0, len(payload), 7):  # 7-byte writes: every boundary split
            sock.sendall(payload[i : i + 7])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


CHUNKED_ROW = b"f\r\n" + ROW + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("framing", "body", "status"),
    [
        (b"Content-Length: 15\r\nContent-Length: 15", ROW, 400),
        (b"Content-Length: +15", ROW, 400),
        (b"Content-Length: 1_5", ROW, 400),
        (b"Transfer-Encoding: gzip\r\nContent-Length: 15", ROW, 400),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", CHUNKED_ROW, 400),
        (b"Transfer-Encoding: gzip, chunked", CHUNKED_ROW, 501),
    ],
)
def test_ambiguous_body_framing_is_refused(
    default_server: Server, framing: bytes, body: bytes, status: int
) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
    answer = exchange(default_server, head + framing + b"\r\n\r\n" + body)
    assert status_and_reason(answer)[0] == status
    # the same body, framed plainly, is fine
    plain = b"Transfer-Encoding: chunked" if body == CHUNKED_ROW else b"Content-Length: 15"
    assert exchange(default_server, head + plain + b"\r\n\r\n" + body).startswith(
        b"HTTP/1.1 200 OK"
    )


# ---------------------------------------------------------------- Host (DNS rebinding)


def _ping(server: Server, host: bytes | None, version: bytes = b"HTTP/1.1") -> bytes:
    head = b"GET /ping " + version + b"\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return exchange(server, head + b"Connection: close\r\n\r\n")


@pytest.mark.parametrize(
    "host",
    ["localhost", "LocalHost:{port}", "localhost.:{port}", "127.0.0.1:{port}", "[::1]:{port}"],
)
def test_loopback_names_are_answered(default_server: Server, host: str) -> None:
    answer = _ping(default_server, host.format(port=default_server.port).encode())
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


@pytest.mark.parametrize(
    "host",
    [
        "rebind.attacker.example:{port}",
        "rebind.attacker.example",
        "localhost.attacker.example:{port}",
        "127.0.0.1.attacker.example",
        "127.0.0.2:{port}",
        "0.0.0.0:{port}",
    ],
)
def test_other_names_are_421_on_loopback(default_server: Server, host: str) -> None:
    # what a page at http://rebind.attacker.example:PORT sends once its name points here
    answer = httpx.post(
        default_server.url + "/invocations",
        content=ROW,
        headers={"Host": host.format(port=default_server.port), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 421, answer.text
    reason = answer.json()
    assert reason["error"] == "MisdirectedRequest"
    assert "DNS rebinding" in reason["message"] and "localhost" in reason["message"]


def test_host_header_required_on_http11(default_server: Server) -> None:
    status, reason = status_and_reason(_ping(default_server, None))
    assert status == 400 and "Host" in reason["message"], reason
    assert _ping(default_server, None, b"HTTP/1.0").startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("host", [b"localhost:http", b"127.0.0.1\r\nHost: localhost", b""])
def test_malformed_or_repeated_host_is_400(default_server: Server, host: bytes) -> None:
    assert status_and_reason(_ping(default_server, host))[0] == 400


def test_any_name_when_not_on_loopback(tmp_path: Path, np_model_dir: Path) -> None:
    # What the supervisor gives the workers when it binds 0.0.0.0 (tested below), here on
    # 127.0.0.1 so that the test never listens beyond this machine.
    env = {"FEDSAGE_ALLOWED_HOSTS": "*"}
    with running(tmp_path, np_model_dir, env=env, workers=1) as server:
        answer = httpx.get(server.url + "/ping", headers={"Host": "my-box.example:8080"})
        assert answer.status_code == 200
        assert status_and_reason(_ping(server, None))[0] == 400  # RFC 9112 still applies


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.5", "127.0.0.5"),
        ("localhost", "localhost"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0.0.0.0", "*"),
        ("::", "*"),
        ("", "*"),
        ("192.0.2.1", "*"),
    ],
)
def test_supervisor_tells_workers_which_names(host: str, allowed: str) -> None:
    config = ServerConfig(model_dir="/nonexistent", host=host)
    assert worker_env(config, 1)["FEDSAGE_ALLOWED_HOSTS"] == allowed
    assert is_loopback_host(host) == (allowed != "*")


def _serve_cli(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "fedsage", "serve", str(model), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "300"},
        check=False,
    )


def test_serve_warns_when_not_on_loopback(np_model_dir: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is nobody's address here: the warning comes, the bind fails.
    done = _serve_cli(np_model_dir, "--host", "192.0.2.1", "--port", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "warning:" in done.stderr and "no authentication" in done.stderr, done.stderr
    assert "cannot listen on 192.0.2.1" in done.stderr


def test_serve_does_not_warn_on_loopback(np_model_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve_cli(np_model_dir, "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "warning" not in done.stderr, done.stderr


# ---------------------------------------------------------------- Accept


def test_empty_accept_elements_are_ignored(default_server: Server) -> None:
    def post(accept: str) -> httpx.Response:
        headers = {"Content-Type": "text/csv", "Accept": accept}
        return httpx.post(default_server.url + "/invocations", content=ROW, headers=headers)

    refused = post("x/abc, , y/def")
    assert refused.status_code == 406 and "x/abc" in refused.json()["message"]
    assert post("x/abc, ,text/csv").headers["content-type"] == "text/csv; charset=utf-8"
    # a header that is empty as a whole still means the default (text/csv here)
    assert post("").headers["content-type"] == "text/csv; charset=utf-8"
