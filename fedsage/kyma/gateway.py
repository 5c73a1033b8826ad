"""The local Kyma gateway: one URL on 127.0.0.1 in front of N local model servers.

A small detached process (fedsage's own environment) that

* forwards ``/ping`` and ``/invocations`` to the replicas, round robin, over pooled
  keep-alive connections (raw asyncio streams, see :mod:`fedsage.kyma._http`);
* checks health actively (``GET /ping`` every ``health_interval`` s) and passively (a
  replica that refuses a connection is taken out of rotation and the request is retried
  on the next one);
* watches each replica's supervisor PID and **restarts a dead replica** (the endpoint is
  deleted, which also stops orphaned workers, and created again from the deployment's
  archives), recording the new port and PID in the ``kyma`` registry record.

``python -m fedsage.kyma.gateway --config gateway.json`` runs it; SIGTERM stops it
(after any restart under way has finished).  It never stops the replicas itself:
:func:`fedsage.kyma.local.delete_local` does that once the gateway is gone.
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
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._process import alive, process_start
from ._http import HttpError, Message, error_body, read_body, read_head, render

__all__ = ["GatewayConfig", "main"]

log = logging.getLogger(__name__)
_ROUTES = {b"/ping", b"/invocations"}
_POOL = 64


@dataclass
class GatewayConfig:
    """What the gateway serves; JSON-serialisable (``gateway.json``).

    Attributes
    ----------
    name : str
        The Kyma deployment name (its ``kyma`` registry record).
    replicas : list of dict
        One per replica: ``endpoint``, ``host``, ``port``, ``pid``, ``pid_start``.
    model_tar, code_tar, program : str or None
        The archives and entry script a replica is (re)created from.
    runtime : dict
        The runtime as ``Runtime.to_dict()`` gives it.
    workers : int
        Worker processes per replica.
    host, port : str, int
        Where the gateway listens (port 0 picks a free port).
    timeout : float
        Per-request timeout towards a replica, in seconds.
    max_body : int
        Largest accepted request body in bytes.
    health_interval : float
        Seconds between active health checks and PID checks.
    state_file : str or None
        Where the gateway writes its PID and port.
    """

    name: str
    replicas: list[dict[str, Any]]
    model_tar: str
    code_tar: str | None
    program: str | None
    runtime: dict[str, Any]
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = 60.0
    max_body: int = 6 * 1024 * 1024
    health_interval: float = 0.5
    state_file: str | None = None

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GatewayConfig:
        """Build from :meth:`to_json` output."""
        return cls(**json.loads(text))


@dataclass
class _Replica:
    endpoint: str
    host: str
    port: int
    pid: int
    pid_start: str | None
    healthy: bool = True
    restarting: bool = False
    failures: int = 0
    next_try: float = 0.0
    restarts: int = 0
    idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=deque)

    def drop_pool(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()

    def as_record(self) -> dict[str, Any]:
        keys = ("endpoint", "host", "port", "pid", "pid_start", "restarts")
        return {key: getattr(self, key) for key in keys}


class _Upstream(Exception):
    """A replica could not be used (connect refused, reset, EOF before a response)."""


class Gateway:
    """The gateway's state and coroutines (see the module docstring)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.replicas = [_Replica(**{k: r[k] for k in _KEYS}) for r in config.replicas]
        self.rr = 0
        self.port = config.port
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    # ---- forwarding
    def _order(self) -> list[_Replica]:
        n = len(self.replicas)
        self.rr = (self.rr + 1) % n
        ring = [self.replicas[(self.rr + i) % n] for i in range(n)]
        ready = [r for r in ring if r.healthy and not r.restarting]
        return ready + [r for r in ring if r not in ready and not r.restarting]

    async def _exchange(
        self, replica: _Replica, request: bytes, method: bytes, fresh: bool
    ) -> tuple[Message, bytes]:
        conn = None if fresh or not replica.idle else replica.idle.popleft()
        if conn is None:
            try:
                conn = await asyncio.open_connection(replica.host, replica.port, limit=1 << 16)
            except OSError as exc:
                raise _Upstream(f"connect: {exc}") from None
        reader, writer = conn
        try:
            writer.write(request)
            head = await read_head(reader)
        except (OSError, HttpError) as exc:
            writer.close()
            raise _Upstream(f"send: {exc}") from None
        if head is None:
            writer.close()
            raise _Upstream("closed before answering")
        status = int(head.first[1]) if head.first[1].isdigit() else 502
        no_body = method == b"HEAD" or status in (204, 304) or status < 200
        try:
            body = b"" if no_body else await read_body(reader, head, 1 << 30, until_eof=True)
        except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
            writer.close()
            raise HttpError(
                502, f"replica {replica.endpoint} broke off its answer: {exc}"
            ) from None
        if head.keep_alive() and head.get(b"content-length") and len(replica.idle) < _POOL:
            replica.idle.append(conn)
        else:
            writer.close()
        return head, body

    async def forward(self, head: Message, body: bytes) -> tuple[Message, bytes]:
        """Send one request to a replica, retrying on the next one when a replica fails."""
        method, target, _ = head.first
        lines = [b"%s %s HTTP/1.1" % (method, target), b"Host: localhost"]
        request = render(b"\r\n".join(lines), head.headers, body)
        errors = []
        for replica in self._order():
            for fresh in (False, True):
                try:
                    answer = await asyncio.wait_for(
                        self._exchange(replica, request, method, fresh), self.config.timeout + 5
                    )
                except _Upstream as exc:
                    errors.append(f"{replica.endpoint}: {exc}")
                    if fresh or not str(exc).startswith(("send", "closed")):
                        replica.healthy = False  # passive check
                        replica.drop_pool()
                        break
                    continue
                except asyncio.TimeoutError:
                    raise HttpError(504, f"replica {replica.endpoint} timed out") from None
                replica.healthy = True
                return answer
        raise HttpError(503, "no replica answered: " + "; ".join(errors or ["none running"]))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection (keep-alive, requests in order)."""
        try:
            while not self.stopping.is_set():
                close = False
                try:
                    head = await read_head(reader)
                    if head is None:
                        break
                    close = not head.keep_alive()
                    if head.get(b"expect").lower() == b"100-continue":
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = await read_body(reader, head, self.config.max_body)
                    if head.first[1].split(b"?", 1)[0] not in _ROUTES:
                        raise HttpError(404, "the gateway forwards only /ping and /invocations")
                    answer, data = await self.forward(head, body)
                    first = b"HTTP/1.1 %s %s" % (answer.first[1], answer.first[2])
                    writer.write(render(first, answer.headers, data, close=close))
                except HttpError as exc:
                    close = close or exc.status in (400, 413, 431)
                    headers, data = error_body(exc.status, exc.message)
                    first = b"HTTP/1.1 %d Error" % exc.status
                    writer.write(render(first, headers, data, close=close))
                await writer.drain()
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # ---- health and restarts
    async def _ping(self, replica: _Replica) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(replica.host, replica.port), 2.0
            )
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            head = await asyncio.wait_for(read_head(reader), 5.0)
            return head is not None and head.first[1] == b"200"
        except (OSError, HttpError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()

    async def watch(self) -> None:
        """Active health checks and the PID watchdog, until the gateway stops."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            for replica in self.replicas:
                if replica.restarting:
                    continue
                if not alive(replica.pid, replica.pid_start):
                    if time.monotonic() >= replica.next_try:
                        replica.restarting = True
                        replica.healthy = False
                        replica.drop_pool()
                        log.warning("replica %s (pid %d) is gone", replica.endpoint, replica.pid)
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
            info = await loop.run_in_executor(None, self._recreate, replica.endpoint)
        except Exception as exc:  # logged; retried with a back-off
            replica.failures += 1
            replica.next_try = time.monotonic() + min(2.0**replica.failures, 30.0)
            log.error("restarting %s failed (%s); retrying later", replica.endpoint, exc)
        else:
            replica.host, replica.port, replica.pid = info["host"], info["port"], info["pid"]
            replica.pid_start = process_start(replica.pid)
            replica.failures, replica.healthy = 0, True
            replica.restarts += 1
            log.info("restarted %s: port %d, pid %d", replica.endpoint, replica.port, replica.pid)
            await loop.run_in_executor(None, self._save_replicas)
        finally:
            replica.restarting = False

    def _recreate(self, endpoint: str) -> dict[str, Any]:
        from ..errors import EndpointError
        from ..runtimes.base import Runtime
        from ..serving import delete_endpoint
        from .local import create_replica

        with contextlib.suppress(EndpointError):
            delete_endpoint(endpoint)  # also stops workers orphaned by a killed supervisor
        return create_replica(endpoint, self.config, Runtime.from_dict(self.config.runtime))

    def _save_replicas(self) -> None:
        from .._home import registry
        from .records import KIND

        reg = registry()
        record = reg.get(KIND, self.config.name)
        if record is None:
            return
        local = dict(record.get("local") or {})
        local["replicas"] = [r.as_record() for r in self.replicas]
        local["restarts"] = sum(r.restarts for r in self.replicas)
        with contextlib.suppress(KeyError):
            reg.update(KIND, self.config.name, local=local)

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
        if self.tasks:  # let a restart under way finish, so delete_local sees its endpoint
            await asyncio.wait(self.tasks, timeout=150)
        for replica in self.replicas:
            replica.drop_pool()
        self._write_state("Stopped")
        log.info("gateway stopped")


_KEYS = ("endpoint", "host", "port", "pid", "pid_start")


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsage.kyma.gateway --config FILE``."""
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
