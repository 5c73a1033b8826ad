"""The local Kyma gateway: one URL on 127.0.0.1 in front of N local model servers.

A small detached process (fedsage's own environment) that

* forwards ``/ping`` and ``/invocations`` to the replicas, round robin, over pooled
  keep-alive connections (an ``httpx.AsyncClient`` per replica);
* checks health actively (``GET /ping`` every ``health_interval`` s) and passively (a
  replica that refuses a connection is taken out of rotation and the request is retried
  on the next one);
* watches each replica's supervisor process and **restarts a dead replica** (the
  endpoint is deleted, which also stops orphaned workers, and created again from the
  deployment's archives), recording the new port and process in the ``kyma`` record;
* drops client connections that stay silent for ``idle_timeout`` seconds (no request,
  a request stopped half-way, an answer not read), and, when it listens on a loopback
  address, answers 400 to requests whose ``Host`` is not this machine (a web page
  cannot reach it through DNS rebinding).

Its listening side reads HTTP/1.1 on raw asyncio streams (:mod:`._http`).
``python -m fedsage.kyma.local.gateway --config gateway.json`` runs it; SIGTERM stops it
(after any restart under way has finished).  It never stops the replicas itself:
:func:`fedsage.kyma.local.delete` does that once the gateway is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .._hosts import is_loopback, split_host_port
from ..records import ReplicaRecord, find_record, update_record
from ._http import HOP_BY_HOP, HttpError, Message, error_body, read_body, read_head, render
from .settings import GatewayConfig

__all__ = ["Gateway", "GatewayConfig", "main"]

log = logging.getLogger(__name__)
_ROUTES = {b"/ping", b"/invocations"}
_POOL = 64
# Nothing was sent: the replica does not listen (dead, or restarting on another port).
_DOWN = (httpx.ConnectError, httpx.ConnectTimeout)
# The connection broke before an answer: possibly a pooled connection the replica had
# closed; worth one more try on the same replica.
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _client(host: str, port: int, timeout: float) -> httpx.AsyncClient:
    authority = f"[{host}]" if ":" in host else host
    client = httpx.AsyncClient(
        base_url=f"http://{authority}:{port}",
        timeout=httpx.Timeout(timeout, connect=2.0),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=_POOL),
        trust_env=False,  # never route 127.0.0.1 through a proxy from the environment
    )
    client.headers = httpx.Headers()  # forward the caller's headers only, not httpx's
    return client


@dataclass
class _Replica:
    record: ReplicaRecord
    client: httpx.AsyncClient
    healthy: bool = True
    restarting: bool = False
    failures: int = 0
    next_try: float = 0.0
    closing: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def endpoint(self) -> str:
        return self.record.endpoint

    def reconnect(self, timeout: float) -> None:
        """Drop the pooled connections (closed in the background), start a fresh pool."""
        old, self.client = self.client, _client(self.record.host, self.record.port, timeout)
        task = asyncio.get_running_loop().create_task(old.aclose())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)


class Gateway:
    """The gateway's state and coroutines (see the module docstring).

    Parameters
    ----------
    config : GatewayConfig
        What to serve.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.upstream_timeout = config.timeout + 5
        self.replicas = [
            _Replica(r, _client(r.host, r.port, self.upstream_timeout)) for r in config.replicas
        ]
        self.rr = 0
        self.port = config.port
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.allowed_hosts: frozenset[str] | None = None
        if is_loopback(config.host):  # bound to a public address: anyone may name it
            self.allowed_hosts = frozenset(
                {"localhost", "127.0.0.1", "::1", split_host_port(config.host)[0]}
            )

    # ---- forwarding
    def _order(self) -> list[_Replica]:
        n = len(self.replicas)
        self.rr = (self.rr + 1) % n
        ring = [self.replicas[(self.rr + i) % n] for i in range(n)]
        ready = [r for r in ring if r.healthy and not r.restarting]
        return ready + [r for r in ring if r not in ready and not r.restarting]

    async def _exchange(
        self, replica: _Replica, method: bytes, target: bytes, headers: Any, body: bytes
    ) -> tuple[int, str, list[tuple[bytes, bytes]], bytes]:
        client = replica.client
        request = client.build_request(
            method.decode("latin-1"), target.decode("latin-1"), headers=headers, content=body
        )
        response = await client.send(request, stream=True)
        try:  # raw bytes: the body goes to the caller with its own Content-Encoding
            data = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.TransportError as exc:
            raise HttpError(
                502, f"replica {replica.endpoint} broke off its answer: {type(exc).__name__}"
            ) from None
        finally:
            await response.aclose()
        return response.status_code, response.reason_phrase, response.headers.raw, data

    async def forward(
        self, head: Message, body: bytes
    ) -> tuple[int, str, list[tuple[bytes, bytes]], bytes]:
        """Send one request to a replica, retrying on the next one when a replica fails.

        Returns
        -------
        tuple
            ``(status, reason, headers, body)`` of the replica's answer.

        Raises
        ------
        HttpError
            503 when no replica answered, 504 on a timeout, 502 on a broken answer.
        """
        method, target, _ = head.first
        headers = [(k, v) for k, v in head.headers if k not in HOP_BY_HOP]
        errors = []
        for replica in self._order():
            for again in (True, False):
                try:
                    answer = await asyncio.wait_for(
                        self._exchange(replica, method, target, headers, body),
                        self.upstream_timeout,
                    )
                except _DOWN as exc:
                    errors.append(f"{replica.endpoint}: {type(exc).__name__}")
                except _DROPPED as exc:
                    errors.append(f"{replica.endpoint}: {type(exc).__name__}")
                    if again:
                        continue
                except (httpx.TimeoutException, asyncio.TimeoutError):
                    raise HttpError(504, f"replica {replica.endpoint} timed out") from None
                except httpx.HTTPError as exc:
                    raise HttpError(
                        502, f"replica {replica.endpoint} failed: {type(exc).__name__}"
                    ) from None
                else:
                    replica.healthy = True
                    return answer
                replica.healthy = False  # passive check
                replica.reconnect(self.upstream_timeout)
                break
        raise HttpError(503, "no replica answered: " + "; ".join(errors or ["none running"]))

    def check_host(self, head: Message) -> None:
        """Refuse a request whose ``Host`` is not this machine (DNS rebinding).

        Raises
        ------
        HttpError
            400, with the reason, when the gateway listens on a loopback address and
            ``Host`` names anything but localhost, 127.0.0.1, [::1] or that address.
        """
        if self.allowed_hosts is None:
            return
        values = [value for name, value in head.headers if name == b"host"]
        if not values:
            if head.first[2] == b"HTTP/1.1":
                raise HttpError(400, "the request has no Host header")
            return
        if len(values) > 1:
            raise HttpError(400, "the request has more than one Host header")
        raw = values[0].decode("latin-1")
        host, port = split_host_port(raw)
        if host not in self.allowed_hosts or (port and not port.isdigit()):
            raise HttpError(
                400,
                f"Host {raw!r} is not allowed: this local gateway answers only requests "
                f"for localhost, 127.0.0.1, [::1] or {self.config.host} (with or without "
                "port), so that web pages cannot reach it through DNS rebinding",
            )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection (keep-alive, requests in order, idle timeout)."""
        idle = self.config.idle_timeout
        try:
            while not self.stopping.is_set():
                close = False
                try:
                    head = await asyncio.wait_for(read_head(reader), idle)
                    if head is None:
                        break
                    close = not head.keep_alive()
                    self.check_host(head)
                    if head.get(b"expect").lower() == b"100-continue":
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = await asyncio.wait_for(
                        read_body(reader, head, self.config.max_body), idle
                    )
                    if head.first[1].split(b"?", 1)[0] not in _ROUTES:
                        raise HttpError(404, "the gateway forwards only /ping and /invocations")
                    status, reason, headers, data = await self.forward(head, body)
                    first = b"HTTP/1.1 %d %s" % (status, reason.encode("latin-1"))
                    writer.write(render(first, headers, data, close=close))
                except HttpError as exc:
                    close = close or exc.status in (400, 413, 431)
                    headers, data = error_body(exc.status, exc.message)
                    first = b"HTTP/1.1 %d Error" % exc.status
                    writer.write(render(first, headers, data, close=close))
                await asyncio.wait_for(writer.drain(), idle)
                if close:
                    break
        except asyncio.TimeoutError:
            log.info("dropped a client connection silent for %g s", idle)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # ---- health and restarts
    async def _ping(self, replica: _Replica) -> bool:
        try:
            response = await replica.client.get("/ping", timeout=httpx.Timeout(5.0, connect=2.0))
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def watch(self) -> None:
        """Active health checks and the process watchdog, until the gateway stops."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            for replica in self.replicas:
                if replica.restarting:
                    continue
                process = replica.record.process
                if process is None or not process.alive():
                    if time.monotonic() >= replica.next_try:
                        replica.restarting = True
                        replica.healthy = False
                        replica.reconnect(self.upstream_timeout)
                        log.warning("replica %s (%s) is gone", replica.endpoint, process)
                        task = loop.create_task(self._restart(replica))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                    continue
                healthy = await self._ping(replica)
                if healthy != replica.healthy:
                    log.info("replica %s healthy=%s", replica.endpoint, healthy)
                replica.healthy = healthy
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.config.health_interval)

    async def _restart(self, replica: _Replica) -> None:
        loop = asyncio.get_running_loop()
        try:
            fresh = await loop.run_in_executor(None, self._recreate, replica.endpoint)
        except Exception as exc:  # logged; retried with a back-off
            replica.failures += 1
            replica.next_try = time.monotonic() + min(2.0**replica.failures, 30.0)
            log.error("restarting %s failed (%s); retrying later", replica.endpoint, exc)
        else:
            fresh.restarts = replica.record.restarts + 1
            replica.record = fresh
            replica.reconnect(self.upstream_timeout)
            replica.failures, replica.healthy = 0, True
            log.info("restarted %s: port %d, %s", fresh.endpoint, fresh.port, fresh.process)
            await loop.run_in_executor(None, self._save_replicas)
        finally:
            replica.restarting = False

    def _recreate(self, endpoint: str) -> ReplicaRecord:
        from ...errors import EndpointError
        from ...runtimes.base import Runtime
        from ...serving import delete_endpoint
        from .replica import start_replica

        with contextlib.suppress(EndpointError):
            delete_endpoint(endpoint)  # also stops workers orphaned by a killed supervisor
        return start_replica(endpoint, self.config, Runtime.from_dict(self.config.runtime))

    def _save_replicas(self) -> None:
        record = find_record(self.config.name)
        if record is None or record.local is None:
            return
        record.local.replicas = [replica.record for replica in self.replicas]
        update_record(record)

    # ---- lifecycle
    def _write_state(self, status: str) -> None:
        if not self.config.state_file:
            return
        path = Path(self.config.state_file)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        state = {"pid": os.getpid(), "port": self.port, "status": status, "updated": time.time()}
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, path)

    async def run(self) -> None:
        """Listen, watch, and stop on SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        server = await asyncio.start_server(
            self.handle, self.config.host, self.config.port, limit=1 << 16, backlog=1024
        )
        self.port = server.sockets[0].getsockname()[1]
        self._write_state("InService")
        log.info("gateway for %s on %s:%d", self.config.name, self.config.host, self.port)
        watcher = loop.create_task(self.watch())
        await self.stopping.wait()
        server.close()
        await watcher
        if self.tasks:  # let a restart under way finish, so delete() sees its endpoint
            await asyncio.wait(self.tasks, timeout=150)
        for replica in self.replicas:
            await replica.client.aclose()
        self._write_state("Stopped")
        log.info("gateway stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsage.kyma.local.gateway --config FILE``."""
    parser = argparse.ArgumentParser(description="fedsage local Kyma gateway")
    parser.add_argument("--config", required=True, help="a GatewayConfig as JSON")
    args = parser.parse_args(argv)
    config = GatewayConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s gateway[%(process)d] %(levelname)s %(message)s",
    )
    asyncio.run(Gateway(config).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
