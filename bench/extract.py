"""Benchmark: extracting a 20-column table to a channel file, fedml-aws's way vs fedsage.

Run:  .venv/bin/python bench/extract.py [--rows 1000000 --small 250000 --repeat 3]
                                       [--engines duckdb,postgresql] [--process-only]
                                       [--formats csv,parquet]

``--process-only`` prints only the second table (whole processes), ``--formats`` limits
it to some formats; without ``postgresql`` in ``--engines`` no PostgreSQL server is
started.

The table has 6 integer, 8 double precision, 5 short text columns and a timestamp, on
DuckDB (a file) and PostgreSQL (a private server started here, stopped by PID).  Each
method runs in its own fresh child process, ``--repeat`` times; the table shows the
median wall time (imports included) and the median peak RSS.  Peak RSS is the child's
own ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would carry over the parent's
peak across ``fork``/``exec``.

- ``fedml-aws``: ``cursor.fetchall()`` -> ``pandas.DataFrame`` -> ``to_csv`` (no header);
- ``fedsage csv`` / ``fedsage parquet``: ``DbConnection.export`` (streaming);
- ``COPY (floor)``: the engine's own CSV export (DuckDB ``COPY TO``; PostgreSQL
  ``COPY TO STDOUT`` copied to a file).  Like fedsage's channel files (and unlike
  fedml-aws's ``to_csv``) it writes a temporary file, calls ``fsync`` on it and renames it
  into place, so the floor pays for the same durable, atomic file.

The last columns compare each fedsage row with the targets: rows/s as a multiple of
fedml-aws's, peak RSS as a fraction of fedml-aws's, wall time as a multiple of the floor's.

A second table times whole processes, interpreter start and imports included, as a user
runs them: ``fedsage data export TABLE --to FILE --format csv|parquet --config URL``
against the engine's own ``COPY`` to the same format in a fresh process (DuckDB ``COPY TO``
CSV and Parquet; PostgreSQL ``COPY TO STDOUT``, CSV only), each writing, ``fsync``-ing and
renaming its file.  The two sides of each ratio take turns run by run, so load that
changes during the measurement (a shared machine) hits both alike; the CPU time each
process tree used (user + system, median) is shown too, as it moves less with load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("fedml-aws", "fedsage csv", "fedsage parquet", "COPY (floor)")
# Timed as whole processes (interpreter start and imports included), as a user runs them.
PROCESS_METHODS = ("fedsage data export csv", "fedsage data export parquet", "COPY csv",
                   "COPY parquet")


def _columns_sql(gen: str) -> str:
    cols = [f"({gen} * {k + 1}) % 100000 AS i{k}" for k in range(6)]
    cols += [f"CAST(({gen} * {k + 3}.25) / 7.0 AS DOUBLE PRECISION) AS f{k}" for k in range(8)]
    cols += [f"'s' || (({gen} * {k + 7}) % 997)::VARCHAR AS s{k}" for k in range(5)]
    cols.append(f"TIMESTAMP '2024-01-01' + ({gen} % 86400) * INTERVAL '1 second' AS ts")
    return ", ".join(cols)


def create_tables(duck_path: str, pg_dsn: str | None, sizes: list[int]) -> None:
    import duckdb

    with duckdb.connect(duck_path) as con:
        for n in sizes:
            con.execute(f"CREATE OR REPLACE TABLE big_{n} AS SELECT {_columns_sql('i')} "
                        f"FROM range({n}) t(i)")
    if pg_dsn is None:
        return
    import psycopg

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

            tmp = f"{out}.part"
            options = "(FORMAT parquet)" if "parquet" in method else "(HEADER false)"
            with duckdb.connect(target) as con:
                con.execute(f"COPY {table} TO '{tmp}' {options}")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        else:
            import psycopg

            tmp = f"{out}.part"
            with psycopg.connect(target) as con, open(tmp, "wb") as fh, \
                    con.cursor().copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        count = -1
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "rss_mb": _peak_rss_mb(), "rows": count}))


def _peak_rss_mb() -> float:
    """This process's own peak resident set (``VmHWM``), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(method: str, engine: str, target: str, table: str, out: Path,
            repeat: int) -> dict[str, float]:
    """Run one cell ``repeat`` times, each in a fresh child; return the medians."""
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, __file__, "--child", method, engine, target, table, str(out)],
            check=True, capture_output=True, text=True,
        )
        out.unlink(missing_ok=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {"wall": statistics.median(r["wall"] for r in runs),
            "rss_mb": statistics.median(r["rss_mb"] for r in runs),
            "spread": max(r["wall"] for r in runs) - min(r["wall"] for r in runs)}


def _process_argv(method: str, engine: str, url: str, raw: str, table: str,
                  out: Path) -> list[str] | None:
    """The command line of ``method`` as a whole process (None: no such method here)."""
    fmt = method.rsplit(" ", 1)[1]
    if method.startswith("fedsage"):
        return [str(Path(sys.executable).parent / "fedsage"), "data", "export", table, "--to",
                str(out), "--format", fmt, "--config", url]
    if engine == "postgresql" and fmt == "parquet":
        return None  # PostgreSQL's COPY writes no Parquet
    return [sys.executable, __file__, "--child", f"COPY {fmt}", engine, raw, table, str(out)]


def measure_processes(methods: list[str], engine: str, url: str, raw: str, table: str,
                      out: Path, repeat: int) -> dict[str, float | None]:
    """Median wall seconds of each method as a whole process (None: no such method here).

    The methods take turns run by run (fedsage, COPY, fedsage, COPY, ...), so a change of
    the machine's load during the measurement hits both sides of a ratio alike.
    """
    argvs = {m: _process_argv(m, engine, url, raw, table, out) for m in methods}
    walls: dict[str, list[float]] = {m: [] for m in methods}
    cpus: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeat):
        for method, argv in argvs.items():
            if argv is None:
                continue
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            walls[method].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[method].append(after.ru_utime + after.ru_stime
                                - before.ru_utime - before.ru_stime)
            out.unlink(missing_ok=True)
    medians: dict[str, float | None] = {
        m: statistics.median(w) if w else None for m, w in walls.items()}
    medians.update({f"{m} cpu": statistics.median(c) if c else None for m, c in cpus.items()})
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="duckdb,postgresql",
                        help="comma-separated subset of duckdb,postgresql")
    parser.add_argument("--formats", default="csv,parquet",
                        help="comma-separated subset of csv,parquet (whole-process table)")
    parser.add_argument("--process-only", action="store_true",
                        help="only the whole-process table (fedsage data export vs COPY)")
    parser.add_argument("--child", nargs=5)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from _pgserver import postgres_server

    sizes = [args.small, args.rows]
    engines = args.engines.split(",")
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory() as tmp, \
            (postgres_server() if "postgresql" in engines else contextlib.nullcontext()) as server:
        duck = os.path.join(tmp, "bench.duckdb")
        dsn = (f"host=127.0.0.1 port={server.port} user=fedsage password=fedsage "
               "dbname=postgres") if server is not None else None
        create_tables(duck, dsn, sizes)
        targets = {"duckdb": (f"duckdb:///{duck}", duck)}
        if server is not None:
            targets["postgresql"] = (server.url, dsn)
        whole: dict[tuple[str, int], dict[str, float | None]] = {}
        print(f"median of {args.repeat} runs; spread = slowest - fastest wall time\n")
        print("| engine | rows | method | wall s (spread) | rows/s | peak RSS MB "
              "| x fedml-aws rows/s | RSS / fedml-aws | x floor time |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for engine, (url, raw) in targets.items():
            if engine not in engines:
                continue
            for n in sizes:
                res = {}
                for method in () if args.process_only else METHODS:
                    target = url if method.startswith("fedsage") else raw
                    res[method] = measure(method, engine, target, f"big_{n}",
                                          Path(tmp) / "out.file", args.repeat)
                for method, r in res.items():
                    base, floor = res["fedml-aws"], res["COPY (floor)"]
                    ratios = (f"{base['wall'] / r['wall']:.1f} | "
                              f"{r['rss_mb'] / base['rss_mb']:.2f} | "
                              f"{r['wall'] / floor['wall']:.2f}")
                    print(f"| {engine} | {n:,} | {method} | {r['wall']:.2f} ({r['spread']:.2f}) | "
                          f"{n / r['wall']:,.0f} | {r['rss_mb']:,.0f} | {ratios} |", flush=True)
                methods = [m for m in PROCESS_METHODS if m.rsplit(" ", 1)[1] in formats]
                whole[(engine, n)] = measure_processes(methods, engine, url, raw, f"big_{n}",
                                                       Path(tmp) / "out.file", args.repeat)
        print("\nwhole processes (interpreter start and imports included), median wall s:\n")
        print("| engine | rows | format | fedsage data export | engine's COPY | ratio "
              "| CPU s (user + sys): fedsage, COPY |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
        for (engine, n), walls in whole.items():
            for fmt in formats:
                mine, floor = walls[f"fedsage data export {fmt}"], walls[f"COPY {fmt}"]
                if mine is not None and floor is not None:
                    cpu = (f"{walls[f'fedsage data export {fmt} cpu']:.2f}, "
                           f"{walls[f'COPY {fmt} cpu']:.2f}")
                    print(f"| {engine} | {n:,} | {fmt} | {mine:.2f} | {floor:.2f} | "
                          f"{mine / floor:.2f} | {cpu} |")


if __name__ == "__main__":
    main()
