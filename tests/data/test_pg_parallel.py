"""Whole PostgreSQL tables read in parallel page ranges over one exported snapshot.

``CHUNK_PAGES`` is lowered so that a few thousand rows span many ranges.  Every
parallel result is compared with the single-stream read of the same table (one
``COPY``, ``FEDSAGE_PG_WORKERS=1``), byte for byte for CSV and value for value for Arrow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _pgserver import PostgresServer

from fedsage.data import DbConnection
from fedsage.data.dialects import _pg_adbc, _pg_parallel
from fedsage.errors import DataError

HOSTILE = "big'; DROP TABLE victim; --\"ü"
ROWS = 6000


@pytest.fixture
def pg(pg_server: PostgresServer, pg_schema: str,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[DbConnection]:
    monkeypatch.setattr(_pg_parallel, "CHUNK_PAGES", 4)
    monkeypatch.setattr(_pg_parallel, "CSV_CHUNK_PAGES", 3)
    db = DbConnection.from_url(pg_server.url, schema=pg_schema)
    quoted = '"' + HOSTILE.replace('"', '""') + '"'
    with db._conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {quoted} AS SELECT i AS id, i * 0.5 AS half, "
                    "repeat('x', i % 50) || ',\"' AS s, NULLIF(i % 7, 0) AS maybe, "
                    "TIMESTAMP '2024-01-01' + i * INTERVAL '1 minute' AS ts "
                    f"FROM generate_series(1, {ROWS}) i")
        # Holes in the heap: ranges with deleted rows and pages with none left.
        cur.execute(f"DELETE FROM {quoted} WHERE id % 5 = 0 OR id BETWEEN 2000 AND 2600")
        cur.execute(f'CREATE VIEW "v" AS SELECT * FROM {quoted}')
        cur.execute("CREATE TABLE victim (x int)")
    db._conn.commit()
    try:
        yield db
    finally:
        db.close()


def _pages(db: DbConnection, name: str) -> int:
    with db._conn.cursor() as cur:
        cur.execute("SELECT pg_relation_size(to_regclass(%s)) / 8192",
                    [db.dialect.qualified(name, db.schema)])
        pages = int(cur.fetchone()[0])
    db._conn.commit()
    return pages


def _planned(db: DbConnection, name: str,
             chunk_pages: int | None = None) -> _pg_parallel.ScanPlan | None:
    conn = db._conn
    with _pg_parallel.scan_plan(conn, _pg_adbc.conninfo(conn),
                                db.dialect.qualified(name, db.schema), 2, chunk_pages) as plan:
        return plan


def test_csv_export_is_the_single_stream_copy_byte_for_byte(
        pg: DbConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _pages(pg, HOSTILE) >= 4 * _pg_parallel.CHUNK_PAGES
    plan = _planned(pg, HOSTILE, _pg_parallel.CSV_CHUNK_PAGES)
    assert plan is not None and len(plan.ranges) >= 5 and plan.workers == 2
    progress: list[int] = []
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "3")
    rows = pg.export(HOSTILE, tmp_path / "parallel.csv", progress=progress.append)
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "1")
    assert pg.export(HOSTILE, tmp_path / "single.csv") == rows
    expected = ROWS - ROWS // 5 - len([i for i in range(2000, 2601) if i % 5])
    assert rows == expected
    assert (tmp_path / "parallel.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()
    # One progress call per range, rising to the total.
    assert len(progress) == len(plan.ranges) and progress[-1] == rows
    assert progress == sorted(progress)
    assert pg.get_table_size("victim") == [(0,)]  # the name was quoted, never run


def test_arrow_and_parquet_match_the_single_stream(
        pg: DbConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = _pg_adbc.AdbcSession.read

    def counted(self: _pg_adbc.AdbcSession, query: str, schema: pa.Schema) -> list[Any]:
        reads.append(query)
        return read(self, query, schema)

    monkeypatch.setattr(_pg_adbc.AdbcSession, "read", counted)
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "2")
    batches = list(pg.iter_batches(pg.table(HOSTILE), batch_rows=700))
    assert len(batches) > 1 and max(b.num_rows for b in batches) <= 700
    plan = _planned(pg, HOSTILE)
    assert plan is not None and len(reads) == len(plan.ranges)  # one read per range
    pg.export(HOSTILE, tmp_path / "parallel.parquet", "parquet")
    assert len(reads) == 2 * len(plan.ranges)
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "1")
    single = pg.to_arrow(HOSTILE)
    parallel = pq.read_table(tmp_path / "parallel.parquet")
    assert parallel.equals(single)
    assert pg.to_arrow(pg.table(HOSTILE)).equals(single)
    assert pa.Table.from_batches(batches).equals(single)


def test_ranges_read_one_snapshot(pg: DbConnection, pg_server: PostgresServer) -> None:
    conn = pg._conn
    info = _pg_adbc.conninfo(conn)
    name = pg.dialect.qualified(HOSTILE, pg.schema)
    with _pg_parallel.scan_plan(conn, info, name, 2) as plan:
        assert plan is not None
        # Committed after the snapshot: no range may see these rows or miss the deleted.
        with psycopg.connect(info, autocommit=True) as other:
            other.execute(f"INSERT INTO {name} (id) SELECT generate_series(1, 3000)")
            other.execute(f"DELETE FROM {name} WHERE id < 100")
        sessions = [_pg_parallel.CopySession(info, plan.setup_statements()) for _ in range(2)]
        try:
            counts = [count for _, count in _pg_parallel.ordered_map(
                lambda s, r: s.copy_out(plan.range_query(*r)), plan.ranges, sessions)]
        finally:
            for session in sessions:
                session.close()
    assert sum(counts) == ROWS - ROWS // 5 - len([i for i in range(2000, 2601) if i % 5])


def test_what_stays_one_stream(pg: DbConnection) -> None:
    assert _planned(pg, "v") is None  # a view has no pages
    assert _planned(pg, "victim") is None  # too small for two ranges
    assert _planned(pg, "no such table") is None  # the single stream reports it
    with pg._conn.cursor() as cur:  # uncommitted rows: only this session sees them
        cur.execute("INSERT INTO victim VALUES (1)")
        assert _planned(pg, HOSTILE) is None
    pg._conn.rollback()
    conn = pg._conn
    with _pg_parallel.scan_plan(conn, _pg_adbc.conninfo(conn),
                                pg.dialect.qualified(HOSTILE, pg.schema), 1) as plan:
        assert plan is None
    with pytest.raises(DataError, match="no such table"):
        pg.export("no such table", Path("x.csv"))
    assert not Path("x.csv").exists()


def test_worker_count_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "3")
    assert _pg_parallel.worker_count() == 3
    monkeypatch.delenv("FEDSAGE_PG_WORKERS")
    assert 1 <= _pg_parallel.worker_count() <= 4
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("FEDSAGE_PG_WORKERS", bad)
        with pytest.raises(DataError, match="FEDSAGE_PG_WORKERS must be a positive integer"):
            _pg_parallel.worker_count()


def test_session_errors_are_data_errors_without_the_password(pg: DbConnection) -> None:
    info = _pg_adbc.conninfo(pg._conn)
    with pytest.raises(DataError, match="invalid snapshot identifier") as caught:
        _pg_parallel.CopySession(info, ["BEGIN ISOLATION LEVEL REPEATABLE READ",
                                        "SET TRANSACTION SNAPSHOT 'bogus'"])
    assert "password" not in str(caught.value)
    session = _pg_parallel.CopySession(info, [])
    try:
        with pytest.raises(DataError, match="division by zero"):
            session.copy_out("SELECT 1 / (i - 3) FROM generate_series(1, 5) i")
        assert session.copy_out("SELECT 1")[0] == bytearray(b"1\n")  # still usable
    finally:
        session.close()
    with pytest.raises(DataError, match="opening a read session failed"):
        _pg_parallel.CopySession(info.replace("password=fedsage", "password=wrong"), [])


class _Session:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def close(self) -> None:
        raise AssertionError("ordered_map must not close sessions")


def test_ordered_map_keeps_order_bounds_work_and_stops_on_errors() -> None:
    import threading
    import time

    sessions = [_Session(), _Session(), _Session()]
    in_flight, peak, lock = [0], [0], threading.Lock()

    def work(session: _Session, item: int) -> int:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        session.calls.append(item)
        time.sleep(0.002 * (item % 3))  # finish out of order
        with lock:
            in_flight[0] -= 1
        if item == 13:
            raise ValueError("range 13 failed")
        return item * 10

    results = []
    with pytest.raises(ValueError, match="range 13 failed"):
        for value in _pg_parallel.ordered_map(work, range(40), sessions):
            results.append(value)
    assert results == [i * 10 for i in range(13)]
    assert peak[0] <= len(sessions)
    started = sorted(i for s in sessions for i in s.calls)
    assert started == list(range(len(started))) and len(started) <= 13 + len(sessions) + 1


def test_a_table_whose_rows_are_all_deleted_keeps_its_schema(
        pg: DbConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDSAGE_PG_WORKERS", "2")
    with pg._conn.cursor() as cur:  # the pages stay until VACUUM: still several ranges
        cur.execute(f"DELETE FROM {pg.dialect.qualified(HOSTILE, pg.schema)}")
    pg._conn.commit()
    assert _planned(pg, HOSTILE) is not None
    table = pg.to_arrow(HOSTILE)
    assert table.num_rows == 0
    assert table.column_names == ["id", "half", "s", "maybe", "ts"]
    assert pg.export(HOSTILE, tmp_path / "empty.parquet", "parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").column_names == table.column_names
