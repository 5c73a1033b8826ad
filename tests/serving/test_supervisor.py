"""The supervisor: a killed worker is replaced, SIGTERM drains and stops everything."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from fedsage._process import alive

from .conftest import running, wait_until


def test_killed_worker_is_replaced(tmp_path: Path, np_model_dir: Path) -> None:
    with running(tmp_path, np_model_dir, workers=2) as server:
        before = server.state()["workers"]
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        wait_until(
            lambda: (
                before[0] not in server.state()["workers"] and len(server.state()["workers"]) == 2
            )
        )
        after = server.state()["workers"]
        assert before[1] in after and not alive(before[0])
        with httpx.Client(base_url=server.url) as client:
            for _ in range(50):  # every request answered, whichever worker takes it
                answer = client.post(
                    "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}
                )
                assert answer.status_code == 200 and answer.text == "[3.0]"
        assert "exited with -9" in server.log_text()


def test_sigterm_stops_gracefully(tmp_path: Path, np_model_dir: Path) -> None:
    with running(tmp_path, np_model_dir, workers=2) as server:
        workers = server.state()["workers"]
        client = httpx.Client(base_url=server.url)
        assert client.get("/ping").status_code == 200  # an idle keep-alive connection
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
        assert not any(alive(pid) for pid in workers)
        assert server.state()["status"] == "Stopped"
        assert "model server stopped" in server.log_text()
        client.close()


def test_worker_stops_when_supervisor_is_killed(tmp_path: Path, np_model_dir: Path) -> None:
    with running(tmp_path, np_model_dir, workers=1) as server:
        workers = server.state()["workers"]
        server.proc.kill()
        server.proc.wait()
        wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10)
