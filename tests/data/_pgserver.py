"""Start and stop a private PostgreSQL server for tests and benchmarks.

The server runs from Debian's ``postgresql`` binaries (``/usr/lib/postgresql/*/bin``)
with its data folder and unix socket under a temporary folder, listens on 127.0.0.1 at
a free port, and is stopped by the PID of the process this module started.  As root,
the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_pg_bin", "postgres_server"]


def find_pg_bin() -> Path:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0]),
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
            "install them with: apt-get install -y postgresql"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: its URL, PID and folders."""

    url: str
    pid: int
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (fast shutdown) by its PID and wait for it."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _demote_args() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None
    user = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"], (
        user.pw_uid
    ), user.pw_gid


def start_postgres(base: Path | None = None, timeout: float = 60.0) -> PostgresServer:
    """Initialise a data folder, start ``postgres`` and wait until it accepts connections."""
    pg_bin = find_pg_bin()
    root = Path(tempfile.mkdtemp(prefix="fedsage-pg-", dir=base))
    data, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    prefix, uid, gid = _demote_args()
    if uid is not None and gid is not None:
        os.chmod(root, 0o755)
        for path in (root, sockdir):
            os.chown(path, uid, gid)
    pwfile = root / "pw"
    pwfile.write_text("fedsage\n")
    if uid is not None and gid is not None:
        os.chown(pwfile, uid, gid)
    init = subprocess.run(
        [*prefix, str(pg_bin / "initdb"), "-D", str(data), "-U", "fedsage", "-A", "md5",
         f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
         "--no-sync"],
        capture_output=True,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')}")
    port = _free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [*prefix, str(pg_bin / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockdir}",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "shared_buffers=128MB", "-c", "max_connections=30"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"postgresql+psycopg://fedsage:fedsage@127.0.0.1:{port}/postgres"
    server = PostgresServer(url=url, pid=process.pid, port=port, root=root, process=process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited early:\n{(root / 'server.log').read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            if _ready(pg_bin, port):
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"postgres did not start:\n{(root / 'server.log').read_text()}")
        time.sleep(0.1)


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()


def _ready(pg_bin: Path, port: int) -> bool:
    result = subprocess.run(
        [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "fedsage"],
        capture_output=True,
    )
    return result.returncode == 0


@contextlib.contextmanager
def postgres_server(base: Path | None = None) -> Iterator[PostgresServer]:
    """Run a server for the duration of the ``with`` block, then stop it and delete its files."""
    server = start_postgres(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
