"""The model server over real sockets: content types, custom handlers, status codes, fuzz."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Server, npy, running

ROWS = [[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]
BODIES = {
    "text/csv": "\n".join(",".join(str(v) for v in row) for row in ROWS).encode(),
    "application/json": json.dumps(ROWS).encode(),
    "application/x-npy": npy(np.array(ROWS)),
}


def _expected(pred: np.ndarray, accept: str) -> bytes:
    if accept == "application/json":
        return json.dumps(pred.tolist()).encode()
    if accept == "text/csv":
        return "".join(f"{v}\n" for v in pred).encode()
    return npy(pred)


@pytest.mark.parametrize("accept", list(BODIES))
@pytest.mark.parametrize("content_type", list(BODIES))
def test_every_content_type_both_ways(
    default_server: Server, sk_model: Any, content_type: str, accept: str
) -> None:
    answer = httpx.post(
        default_server.url + "/invocations",
        content=BODIES[content_type],
        headers={"Content-Type": content_type, "Accept": accept},
    )
    assert answer.status_code == 200, answer.text
    pred = sk_model.predict(np.array(ROWS, dtype=np.float32))
    expected_type = "text/csv; charset=utf-8" if accept == "text/csv" else accept
    assert answer.headers["content-type"] == expected_type
    if accept == "application/x-npy":
        assert np.load(io.BytesIO(answer.content)).tolist() == pred.tolist()
    else:
        assert answer.content == _expected(pred, accept)


def test_json_layout_of_floats(default_server: Server, sk_model: Any) -> None:
    # json.dumps layout: ", " separators, full repr precision
    answer = httpx.post(
        default_server.url + "/invocations",
        content=BODIES["application/json"],
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert answer.text.startswith("[") and ", " in answer.text


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_default_accept_from_environment(default_server: Server, accept: str | None) -> None:
    headers = {"Content-Type": "text/csv"}
    if accept:
        headers["Accept"] = accept
    answer = httpx.post(
        default_server.url + "/invocations", content=b"0.9,0.8,0.1,0.2", headers=headers
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.text == "1\n"  # one row works (deliberate difference from the image)


def test_ping_and_execution_parameters_absent(default_server: Server) -> None:
    ping = httpx.get(default_server.url + "/ping")
    assert (ping.status_code, ping.content) == (200, b"")
    assert ping.headers["content-type"] == "application/json"
    assert httpx.get(default_server.url + "/execution-parameters").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/invocations", {"Content-Type": "text/plain"}, b"1,2,3,4", 415),
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv", "Accept": "text/xml"},
            b"1,2,3,4",
            406,
        ),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"x,y,z,w", 400),
        ("POST", "/invocations", {"Content-Type": "application/json"}, b"[[1, 2", 400),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"1,2", 400),  # wrong feature count
        ("GET", "/nowhere", {}, b"", 404),
        ("GET", "/invocations", {}, b"", 405),
        ("POST", "/ping", {}, b"", 405),
    ],
)
def test_error_codes(
    default_server: Server,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    answer = httpx.request(method, default_server.url + path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    reason = answer.json()
    assert set(reason) == {"error", "message"} and "\n" not in answer.text


def _raw(server: Server, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_413_above_default_limit_without_reading_the_body(default_server: Server) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
    answer = _raw(default_server, head + b"Content-Length: 6291457\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b"6291456" in answer


def test_keep_alive_pipelining_and_chunked(default_server: Server) -> None:
    one = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 15\r\n\r\n"
    one += b"0.9,0.8,0.1,0.2"
    chunked = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"4\r\n0.1,\r\nb\r\n0.2,0.3,0.4\r\n0\r\n\r\n"
    )
    answer = _raw(default_server, one + one + chunked)
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer
    assert answer.endswith(b"0\n")


def test_custom_handlers_and_tuple_output(custom_server: Server, sk_model: Any) -> None:
    answer = httpx.post(
        custom_server.url + "/invocations",
        content=b"0.9|0.8|0.1|0.2",
        headers={"Content-Type": "application/vnd.pipe", "Accept": "anything/at-all"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.result+json"
    proba = sk_model.predict_proba([[0.9, 0.8, 0.1, 0.2]])
    assert answer.json() == {"proba": proba.tolist()}


def test_custom_handler_faults_are_500_one_line(custom_server: Server) -> None:
    headers = {"Content-Type": "application/vnd.pipe"}
    answer = httpx.post(custom_server.url + "/invocations", content=b"999|1|1|1", headers=headers)
    assert answer.status_code == 500
    assert "the model blew up" in answer.json()["message"]
    assert "Traceback" not in answer.text and "\n" not in answer.text
    assert "Traceback" in custom_server.log_text()  # ... but the log has it
    # a custom input_fn decides itself: its ValueError is a model fault
    bad = httpx.post(
        custom_server.url + "/invocations", content=b"1", headers={"Content-Type": "text/csv"}
    )
    assert bad.status_code == 500


def test_timeout_is_504_and_worker_survives(custom_server: Server) -> None:
    headers = {"Content-Type": "application/vnd.pipe"}
    answer = httpx.post(custom_server.url + "/invocations", content=b"777|1|1|1", headers=headers)
    assert answer.status_code == 504
    assert httpx.get(custom_server.url + "/ping").status_code == 200


def test_alarm_of_an_earlier_request_does_not_end_the_next(custom_server: Server) -> None:
    """The per-request alarm outlives the request that armed it: when it goes off during
    a later request that is within its own time (1 s here), that request goes on."""
    headers = {"Content-Type": "application/vnd.pipe"}
    time.sleep(1.1)  # whatever alarm an earlier test left has gone off
    with httpx.Client(base_url=custom_server.url) as client:
        assert client.post("/invocations", content=b"1|1|1|1", headers=headers).status_code == 200
        time.sleep(0.6)  # the alarm armed just now goes off 0.4 s into the next request
        began = time.monotonic()
        answer = client.post("/invocations", content=b"555|1|1|1", headers=headers)
        took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert took >= 0.6


def test_configured_body_limit(custom_server: Server) -> None:
    headers = {"Content-Type": "application/vnd.pipe"}
    answer = httpx.post(custom_server.url + "/invocations", content=b"1|" * 600, headers=headers)
    assert answer.status_code == 413 and "1000" in answer.json()["message"]


def test_execution_parameters(custom_server: Server) -> None:
    answer = httpx.get(custom_server.url + "/execution-parameters")
    assert answer.status_code == 200 and answer.json()["MaxPayloadInMB"] == 6


def test_transform_fn(tmp_path: Path, sk_model_dir: Path, sk_model: Any) -> None:
    with running(tmp_path, sk_model_dir, program="transform.py") as server:
        answer = httpx.post(
            server.url + "/invocations",
            content=b"0.9,0.8,0.1,0.2\n0.1,0.1,0.1,0.1\n",
            headers={"Content-Type": "text/csv"},
        )
    expected = ";".join(str(p) for p in sk_model.predict([[0.9, 0.8, 0.1, 0.2], [0.1] * 4]))
    assert (answer.status_code, answer.text) == (200, expected)
    assert answer.headers["content-type"] == "text/x-classes"


_TYPES = st.sampled_from(
    ["text/csv", "application/json", "application/x-npy", "text/plain", "", "*/*", "text/csv; x"]
)
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
    str.strip  # httpx itself refuses header values with surrounding blanks
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]),
    path=st.sampled_from(["/invocations", "/ping", "/execution-parameters", "/x"])
    | _TEXT.map("/".__add__),
    content_type=_TYPES | _TEXT,
    accept=st.none() | _TYPES | _TEXT,
    body=st.binary(max_size=300)
    | st.lists(st.lists(st.floats() | st.integers(), max_size=5), max_size=4).map(
        lambda rows: json.dumps(rows).encode()
    )
    | st.lists(_TEXT, max_size=5).map(lambda rows: "\n".join(rows).encode()),
)
def test_fuzz_bad_input_never_gives_5xx(
    default_server: Server,
    method: str,
    path: str,
    content_type: str,
    accept: str | None,
    body: bytes,
) -> None:
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    with httpx.Client(base_url=default_server.url, timeout=10) as client:
        answer = client.request(method, path, content=body, headers=headers)
        assert answer.status_code < 500, (answer.status_code, answer.text)
        assert client.get("/ping").status_code == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=400))
def test_fuzz_garbage_bytes_never_kill_the_server(default_server: Server, garbage: bytes) -> None:
    answer = _raw(default_server, garbage + b"\r\n\r\n")
    assert not answer.startswith(b"HTTP/1.1 5"), answer
    assert httpx.get(default_server.url + "/ping").status_code == 200
