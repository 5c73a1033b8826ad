"""Benchmark: writing predictions through ``TableWriter`` vs the engine's own bulk load.

Run:  .venv/bin/python bench/write.py [--rows 1000000 --batch 65536 --small-batch 1000
                                      --repeat 3]
                                     [--engines duckdb,postgresql,sqlite]

The rows are ``id`` (int64) and ``prediction`` (float64), built in Arrow and handed over
in batches of ``--batch`` rows (and of ``--small-batch`` rows), as batch scoring hands
them; the writer gathers them into bulk loads of 262,144 rows.  Each method replaces the
table ``--repeat`` times in this process after one untimed warm-up run (imports, first
connection); the table shows the median wall time.

- ``TableWriter``: staging table, bulk path per engine, one transaction at commit
  (create the target from staging, drop staging);
- floor, DuckDB: ``CREATE TABLE … AS SELECT * FROM arrow_table`` in one statement, on a
  connection left open between runs (as the writer's); both end with ``CHECKPOINT``,
  so both times include writing the rows into the database file;
- floor, PostgreSQL: ``COPY … FROM STDIN (FORMAT csv)`` of the same Arrow CSV straight
  into the target (and, when ``adbc-driver-postgresql`` is installed, ADBC's binary
  ``COPY`` ingest);
- floor, SQLite: ``executemany`` of the rows straight into the target, one transaction.

PostgreSQL is a private server started here (``tests/data/_pgserver.py``) and stopped
by PID; DuckDB and SQLite are files in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedsage.data import DbConnection  # noqa: E402
from fedsage.data.writer import TableWriter  # noqa: E402

SCHEMA = pa.schema([("id", pa.int64()), ("prediction", pa.float64())])


def make_data(rows: int) -> pa.Table:
    import numpy as np

    rng = np.random.default_rng(16)
    return pa.table({"id": np.arange(rows, dtype=np.int64),
                     "prediction": rng.random(rows)}, schema=SCHEMA)


def via_writer(db: DbConnection, data: pa.Table, batch: int) -> None:
    with TableWriter(db, "PREDICTIONS", arrow_schema=SCHEMA, if_exists="replace") as writer:
        for b in data.to_batches(max_chunksize=batch):
            writer.write(b)
        writer.commit(expected_rows=data.num_rows)
    if db.dialect.name == "duckdb":
        # As the floor: the rows in the database file, not only in DuckDB's WAL/memory.
        db._conn.conn.execute("CHECKPOINT")


def duckdb_floor(conn: Any, data: pa.Table) -> None:
    conn.register("arrow_data", data)
    conn.execute("DROP TABLE IF EXISTS floor_t")
    conn.execute("CREATE TABLE floor_t AS SELECT * FROM arrow_data")
    conn.unregister("arrow_data")
    conn.execute("CHECKPOINT")


def pg_copy_floor(dsn: str, data: pa.Table) -> None:
    import psycopg
    import pyarrow.csv as pacsv

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS floor_t")
        conn.execute("CREATE TABLE floor_t (id BIGINT, prediction DOUBLE PRECISION)")
        with conn.cursor().copy("COPY floor_t (id, prediction) FROM STDIN (FORMAT csv)") as copy:
            for b in data.to_batches(max_chunksize=65_536):
                sink = pa.BufferOutputStream()
                pacsv.write_csv(b, sink, write_options=pacsv.WriteOptions(include_header=False))
                copy.write(memoryview(sink.getvalue()))
        conn.commit()


def pg_adbc_floor(uri: str, data: pa.Table) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest("floor_t", data, mode="replace")
        conn.commit()


def sqlite_floor(path: str, data: pa.Table) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TABLE IF EXISTS floor_t")
        conn.execute("CREATE TABLE floor_t (id BIGINT, prediction DOUBLE)")
        for b in data.to_batches(max_chunksize=10_000):
            conn.executemany("INSERT INTO floor_t VALUES (?, ?)",
                             zip(*[c.to_pylist() for c in b.columns], strict=True))
        conn.commit()
    finally:
        conn.close()


def timed(run: Callable[[], None], repeat: int) -> tuple[float, float]:
    run()  # warm-up, untimed: imports (SQLAlchemy, pyarrow.csv) and first connections
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), max(walls) - min(walls)


def writer_rows(engine: str, db: DbConnection, data: pa.Table,
                args: argparse.Namespace) -> list[tuple[str, str, float, float]]:
    rows = [(engine, f"TableWriter, {args.batch:,}-row batches",
             *timed(partial(via_writer, db, data, args.batch), args.repeat))]
    if args.small_batch:
        rows.append((engine, f"TableWriter, {args.small_batch:,}-row batches",
                     *timed(partial(via_writer, db, data, args.small_batch), args.repeat)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--small-batch", type=int, default=1_000,
                        help="also write in batches this small (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="duckdb,postgresql,sqlite")
    args = parser.parse_args()
    engines = args.engines.split(",")
    data = make_data(args.rows)

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from _pgserver import postgres_server

    results: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        dsn = f"host=127.0.0.1 port={server.port} user=fedsage password=fedsage dbname=postgres"
        for engine in engines:
            if engine == "duckdb":
                path = str(Path(tmp) / "w.duckdb")
                with DbConnection.from_url(f"duckdb:///{path}") as db:
                    results += writer_rows(engine, db, data, args)
                import duckdb

                conn = duckdb.connect(path)  # open, as the writer's connection is
                try:
                    results.append((engine, "CREATE TABLE AS (floor)",
                                    *timed(partial(duckdb_floor, conn, data), args.repeat)))
                finally:
                    conn.close()
            elif engine == "postgresql":
                with DbConnection.from_url(server.url) as db:
                    results += writer_rows(engine, db, data, args)
                results.append((engine, "COPY csv (floor)",
                                *timed(partial(pg_copy_floor, dsn, data), args.repeat)))
                try:
                    import adbc_driver_postgresql  # noqa: F401
                except ImportError:
                    pass
                else:
                    uri = f"postgresql://fedsage:fedsage@127.0.0.1:{server.port}/postgres"
                    results.append((engine, "ADBC binary COPY ingest",
                                    *timed(partial(pg_adbc_floor, uri, data), args.repeat)))
            elif engine == "sqlite":
                path = str(Path(tmp) / "w.db")
                with DbConnection.from_url(f"sqlite:///{path}") as db:
                    results += writer_rows(engine, db, data, args)
                results.append((engine, "executemany (floor)",
                                *timed(partial(sqlite_floor, path, data), args.repeat)))

    print(f"{args.rows:,} rows x 2 columns (id int64, prediction float64), batches of "
          f"{args.batch:,}; median of {args.repeat} runs\n")
    print("| engine | method | wall s (spread) | rows/s | vs floor |")
    print("| --- | --- | ---: | ---: | ---: |")
    floors = {e: w for e, m, w, _ in results if "floor" in m}
    for engine, method, wall, spread in results:
        print(f"| {engine} | {method} | {wall:.2f} ({spread:.2f}) | "
              f"{args.rows / wall:,.0f} | {wall / floors[engine]:.2f}x |")


if __name__ == "__main__":
    main()
