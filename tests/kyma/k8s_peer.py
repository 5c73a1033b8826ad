"""A tiny HTTP server on 127.0.0.1 that records requests and answers canned Kubernetes JSON.

It is *not* a Kubernetes API server: it checks nothing and stores nothing.  It lets the
tests see the exact requests the official ``kubernetes`` client sends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Peer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    # (method, path) -> list of (status, json); the last answer repeats
    routes: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)

    def answer(self, method: str, path: str, *replies: tuple[int, Any]) -> None:
        self.routes[(method, path)] = list(replies)

    def kubeconfig(self, folder: Path, token: str = "kube-secret-token") -> Path:
        path = folder / "kubeconfig.yml"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters:\n- name: c\n  cluster:\n    server: {self.url}\n"
            f"users:\n- name: u\n  user:\n    token: {token}\n"
            "contexts:\n- name: test\n  context:\n    cluster: c\n    user: u\n"
        )
        return path


@contextmanager
def recording_peer() -> Iterator[Peer]:
    peer = Peer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            peer.requests.append(
                Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
            )
            replies = peer.routes.get((self.command, parts.path))
            if replies:
                status, payload = replies.pop(0) if len(replies) > 1 else replies[0]
            elif self.command == "PATCH":
                status, payload = 200, body  # echo the applied object
            elif self.command == "DELETE":
                status, payload = 200, {"kind": "Status", "apiVersion": "v1", "code": 200}
            else:
                status, payload = (
                    404,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": f"{parts.path} not found",
                        "code": 404,
                    },
                )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
