"""The local gateway in-process: real sockets on 127.0.0.1, tiny real upstream servers.

The gateway process itself (replicas, restarts, idle timeout, Host check) is exercised in
test_kyma_local.py; here its forwarding decisions are checked with upstreams that
misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from fedsage._process import ProcessIdentity
from fedsage.kyma.local._http import HttpError, Message
from fedsage.kyma.local.gateway import Gateway
from fedsage.kyma.local.settings import GatewayConfig
from fedsage.kyma.records import ReplicaRecord


async def _upstream(tag: str, *, drop_second: bool = False) -> tuple[asyncio.Server, int]:
    """A minimal model server answering ``{"replica": tag}``.

    With ``drop_second`` it closes a connection, unanswered, when a second request
    arrives on it: what a server does when it times out a keep-alive connection just as
    the gateway reuses it.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if drop_second and served == 1:
                    break
                body = json.dumps({"replica": tag}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(ports: list[int], host: str = "127.0.0.1") -> GatewayConfig:
    me = ProcessIdentity.current()  # alive: the watchdog (not run here) would leave it
    replicas = [ReplicaRecord(f"r{i}", "127.0.0.1", port, me) for i, port in enumerate(ports)]
    return GatewayConfig(
        name="gw-test",
        replicas=replicas,
        model_tar="unused",
        code_tar=None,
        program=None,
        runtime={},
        host=host,
        timeout=10.0,
    )


Scenario = Callable[[httpx.AsyncClient, Gateway], Awaitable[None]]


async def _serve(ports: list[int], scenario: Scenario) -> None:
    """Run ``scenario`` against a gateway in front of ``ports`` (in this event loop)."""
    gateway = Gateway(_config(ports))
    server = await asyncio.start_server(gateway.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            await scenario(client, gateway)
    finally:
        server.close()
        await server.wait_closed()
        for replica in gateway.replicas:
            await replica.client.aclose()


def _run(upstreams: list[tuple[str, bool] | None], scenario: Scenario) -> None:
    """Start upstreams (``(tag, drop_second)``; None = a closed port), then the scenario."""

    async def main() -> None:
        servers, ports = [], []
        for upstream in upstreams:
            if upstream is None:
                ports.append(_closed_port())
                continue
            server, port = await _upstream(upstream[0], drop_second=upstream[1])
            servers.append(server)
            ports.append(port)
        try:
            await _serve(ports, scenario)
        finally:
            for server in servers:
                server.close()

    asyncio.run(main())


def test_requests_are_spread_over_the_replicas():
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        seen = []
        for _ in range(6):
            answer = await client.post("/invocations", content=b"1", headers={"X-A": "b"})
            assert answer.status_code == 200
            seen.append(answer.json()["replica"])
        assert sorted(seen) == ["a", "a", "a", "b", "b", "b"]
        assert seen[0] != seen[1]  # round robin, not one replica then the other

    _run([("a", False), ("b", False)], scenario)


def test_a_replica_that_refuses_connections_is_skipped_and_marked_unhealthy():
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(4):
            answer = await client.post("/invocations", content=b"1")
            assert answer.status_code == 200 and answer.json() == {"replica": "live"}
        assert [r.healthy for r in gateway.replicas] == [False, True]

    _run([None, ("live", False)], scenario)


def test_a_dropped_keep_alive_connection_is_retried_on_the_same_replica():
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(3):  # each second request on a pooled connection is dropped
            answer = await client.post("/invocations", content=b"1")
            assert answer.status_code == 200, answer.text
        assert gateway.replicas[0].healthy

    _run([("flaky", True)], scenario)


def test_no_replica_left_is_a_503_naming_the_errors():
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        answer = await client.post("/invocations", content=b"1")
        assert answer.status_code == 503
        body = answer.json()
        assert body["error"] == "GatewayError" and "ConnectError" in body["message"]
        assert "r0" in body["message"] and "r1" in body["message"]

    _run([None, None], scenario)


def test_host_check_only_when_bound_to_loopback():
    def head(host: bytes) -> Message:
        return Message((b"GET", b"/ping", b"HTTP/1.1"), [(b"host", host)])

    public = Gateway(_config([1], host="0.0.0.0"))  # never bound here: only its rule is read
    public.check_host(head(b"evil.example"))  # no check: anyone may name a public address
    local = Gateway(_config([1], host="127.0.0.1"))
    for allowed in (b"localhost", b"127.0.0.1:8080", b"[::1]:1", b"LOCALHOST:5"):
        local.check_host(head(allowed))
    for refused in (b"evil.example", b"localhost.evil.example", b"127.0.0.1:x", b""):
        with pytest.raises(HttpError) as caught:
            local.check_host(head(refused))
        assert caught.value.status == 400
