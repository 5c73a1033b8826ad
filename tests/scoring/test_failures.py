"""Failure injection: the model raises on a batch, a worker crashes or is killed, Ctrl-C,
a lost database connection.  Each time the target is as it was, no staging table is left,
and the temporary endpoint is gone."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from fedsage.errors import DataError, ScoringError
from fedsage.serving import endpoints

from ._helpers import make_table, read, scoring_endpoints, table_names
from .conftest import frame

OLD = pd.DataFrame({"ID": [1, 2], "prediction": [9, 9]})


def _with_sentinel(rows: int, row: int, value: float) -> pd.DataFrame:
    data = frame(rows)
    data.loc[row - 1, "A"] = value
    return data


def _prepare(db, data: pd.DataFrame) -> set[str]:
    make_table(db, "IN", data)
    make_table(db, "OUT", OLD)
    return table_names(db)


def _assert_untouched(db, before: set[str]) -> None:
    assert read(db, "OUT").to_dict("list") == OLD.to_dict("list")
    assert table_names(db) == before
    assert scoring_endpoints() == []


def _while_scoring(action: Callable[[dict[str, Any]], None], delay: float) -> threading.Thread:
    """Run ``action(endpoint description)`` ``delay`` seconds after the temporary endpoint
    is in service (batch 2 sleeps 3 s in the model, so the action lands during it)."""

    def run() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready = [
                e
                for e in endpoints.list_endpoints()
                if e["EndpointName"].startswith("score-") and e["EndpointStatus"] == "InService"
            ]
            if ready:
                time.sleep(delay)
                action(ready[0])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _score(dwc: Any, trained: dict[str, str], db: Any, workers: int = 2) -> Any:
    """Score table IN into OUT (replace) in batches of 10 rows, keeping ID."""
    return dwc.batch_transform(
        trained["good"],
        db.table("IN"),
        "OUT",
        keep_columns=["ID"],
        if_exists="replace",
        batch_rows=10,
        workers=workers,
        progress=False,
    )


def test_model_raises_on_the_third_batch(db, dwc, trained):
    before = _prepare(db, _with_sentinel(50, 25, 1500.0))
    with pytest.raises(ScoringError, match=r"input rows 21 to 30 \(status 500\).*out of range"):
        _score(dwc, trained, db)
    _assert_untouched(db, before)


def test_worker_crash(duck, dwc, trained):
    before = _prepare(duck, _with_sentinel(50, 25, 3000.0))
    # Rows 21-30 kill their worker; a request of rows 1-20 on a connection that worker
    # held is cut with it, and the first batch in input order is the one reported.
    with pytest.raises(
        ScoringError,
        match=r"(?s)model server failed while scoring input rows (1 to 10|11 to 20|21 to 30): "
        r".*dropped the request.*end of the model server's log",
    ):
        _score(dwc, trained, duck)
    _assert_untouched(duck, before)


def test_killed_worker(duck, dwc, trained):
    before = _prepare(duck, _with_sentinel(50, 15, 2000.0))
    killed: list[int] = []

    def kill(description: dict[str, Any]) -> None:
        state = json.loads((Path(description["Local"]["dir"]) / "state.json").read_text())
        for pid in state["workers"]:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = _while_scoring(kill, 1.0)
    # One worker takes its two connections in either order: either batch may be the one cut.
    with pytest.raises(ScoringError, match=r"input rows (1 to 10|11 to 20).*log"):
        _score(dwc, trained, duck, workers=1)
    thread.join(5)
    assert killed
    _assert_untouched(duck, before)


def test_ctrl_c(db, dwc, trained):
    before = _prepare(db, _with_sentinel(50, 15, 2000.0))
    main = threading.main_thread().ident
    assert main is not None
    thread = _while_scoring(lambda _: signal.pthread_kill(main, signal.SIGINT), 1.0)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _score(dwc, trained, db)
    thread.join(5)
    assert time.monotonic() - began < 60  # stopped, not run to the end of a 60 s timeout
    _assert_untouched(db, before)


def test_lost_database_connection(pg_server, pg_schema, dwc, trained):
    from fedsage.data import DbConnection

    db = DbConnection.from_url(pg_server.url, schema=pg_schema)
    try:
        before = _prepare(db, _with_sentinel(50, 15, 2000.0))
        dsn = f"host=127.0.0.1 port={pg_server.port} user=fedsage password=fedsage dbname=postgres"

        def cut(_: dict[str, Any]) -> None:
            # Cut once the writer has written (a session holds a transaction id): a cut
            # timed only from "in service" can land, under load, while the whole 50-row
            # input is read and before the writer has connected, and then nothing fails.
            with psycopg.connect(dsn, autocommit=True) as admin:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    writing = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                        " AND backend_type = 'client backend' AND backend_xid IS NOT NULL"
                    ).fetchone()
                    if writing and writing[0]:
                        break
                    time.sleep(0.02)
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )

        thread = _while_scoring(cut, 0.0)
        with pytest.raises((DataError, ScoringError)):
            _score(dwc, trained, db)
        thread.join(5)
    finally:
        db.close()
    with DbConnection.from_url(pg_server.url, schema=pg_schema) as fresh:
        _assert_untouched(fresh, before)
