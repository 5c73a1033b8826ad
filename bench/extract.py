"""Benchmark: extracting a 20-column table to a channel file, fedml-aws's way vs fedsage.

Run:  .venv/bin/python bench/extract.py [--rows 1000000 --small 250000]

For DuckDB (a file) and PostgreSQL (a private server started here, stopped by PID),
each method runs in its own child process, which reports its wall time and peak RSS
(``ru_maxrss``):

- ``fedml-aws``: ``cursor.fetchall()`` -> ``pandas.DataFrame`` -> ``to_csv`` (no header);
- ``fedsage csv`` / ``fedsage parquet``: ``DbConnection.export`` (streaming);
- ``COPY (floor)``: the engine's own CSV export (DuckDB ``COPY TO``; PostgreSQL
  ``COPY TO STDOUT`` copied to a file), the fastest way out of the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("fedml-aws", "fedsage csv", "fedsage parquet", "COPY (floor)")


def _columns_sql(gen: str) -> str:
    cols = [f"({gen} * {k + 1}) % 100000 AS i{k}" for k in range(6)]
    cols += [f"({gen} * {k + 3}.25) / 7.0 AS f{k}" for k in range(8)]
    cols += [f"'s' || (({gen} * {k + 7}) % 997)::VARCHAR AS s{k}" for k in range(5)]
    cols.append(f"TIMESTAMP '2024-01-01' + ({gen} % 86400) * INTERVAL '1 second' AS ts")
    return ", ".join(cols)


def create_tables(duck_path: str, pg_dsn: str, sizes: list[int]) -> None:
    import duckdb
    import psycopg

    with duckdb.connect(duck_path) as con:
        for n in sizes:
            con.execute(f"CREATE OR REPLACE TABLE big_{n} AS SELECT {_columns_sql('i')} "
                        f"FROM range({n}) t(i)")
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        for n in sizes:
            con.execute(f"DROP TABLE IF EXISTS big_{n}")
            con.execute(f"CREATE UNLOGGED TABLE big_{n} AS SELECT "
                        f"{_columns_sql('i').replace('::VARCHAR', '::text')} "
                        f"FROM generate_series(0, {n - 1}) i")
            con.execute(f"VACUUM ANALYZE big_{n}")


def child(method: str, engine: str, target: str, table: str, out: str) -> None:
    start = time.perf_counter()
    if method == "fedml-aws":
        import pandas as pd

        if engine == "duckdb":
            import duckdb

            con = duckdb.connect(target)
        else:
            import psycopg

            con = psycopg.connect(target)
        cur = con.cursor()
        cur.execute(f"SELECT * FROM {table}")
        rows = cur.fetchall()
        frame = pd.DataFrame(rows, columns=[d[0] for d in cur.description])
        frame.to_csv(out, header=False, index=False)
        count = len(frame)
    elif method.startswith("fedsage"):
        sys.path.insert(0, str(ROOT))
        from fedsage.data import DbConnection

        with DbConnection.from_url(target) as db:
            count = db.export(table, out, "parquet" if "parquet" in method else "csv")
    else:
        if engine == "duckdb":
            import duckdb

            with duckdb.connect(target) as con:
                con.execute(f"COPY {table} TO '{out}' (HEADER false)")
        else:
            import psycopg

            with psycopg.connect(target) as con, open(out, "wb") as fh, \
                    con.cursor().copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    fh.write(chunk)
        count = -1
    wall = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss_mb, "rows": count}))


def measure(method: str, engine: str, target: str, table: str, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", method, engine, target, table, str(out)],
        check=True, capture_output=True, text=True,
    )
    out.unlink(missing_ok=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    parser.add_argument("--child", nargs=5)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from _pgserver import postgres_server

    sizes = [args.small, args.rows]
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        duck = os.path.join(tmp, "bench.duckdb")
        dsn = f"host=127.0.0.1 port={server.port} user=fedsage password=fedsage dbname=postgres"
        create_tables(duck, dsn, sizes)
        targets = {"duckdb": (f"duckdb:///{duck}", duck), "postgresql": (server.url, dsn)}
        print("| engine | rows | method | wall s | rows/s | peak RSS MB |")
        print("| --- | ---: | --- | ---: | ---: | ---: |")
        for engine, (url, raw) in targets.items():
            for n in sizes:
                for method in METHODS:
                    target = url if method.startswith("fedsage") else raw
                    r = measure(method, engine, target, f"big_{n}", Path(tmp) / "out.file")
                    print(f"| {engine} | {n:,} | {method} | {r['wall']:.2f} | "
                          f"{n / r['wall']:,.0f} | {r['rss_mb']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
