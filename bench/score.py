"""Benchmark: batch scoring a warehouse table back into the warehouse, three ways.

Run:  .venv/bin/python bench/score.py [--rows 1000000] [--loop-rows 50000]
                                     [--engines duckdb,postgresql] [--skip-loop]

The table is bench/extract.py's 20 columns (6 integer, 8 double precision, 5 short text,
a timestamp) plus an ``id``, on DuckDB (a file) and PostgreSQL (a private server started
here, stopped by PID).  A LogisticRegression is trained on six numeric columns
(``f0``..``f5``) by a normal SageMaker script on the default 0.23-1 runtime; every method
writes ``id`` + the prediction to a new table.

- ``notebook loop`` (fedml-aws's way): ``get_data_with_headers`` pulls the table into
  memory, the features are cut into 6 MB CSV requests for ``predict`` on a deployed
  endpoint (deployed before the clock starts), and ``insert_into_table`` writes one row
  per call.  Timed on ``--loop-rows`` rows and scaled linearly to ``--rows``.
- ``fedsage batch_transform``: ``DwcSagemaker.batch_transform(job, db.table(...),
  "scores", keep_columns=["id"], features=[...])`` -- the model's own server started for
  the call (included in the time), streamed, staged, committed; once as called by
  default (no ``content_type``: the model keeps the image's default ``input_fn`` and the
  features are numbers, so fedsage sends float32 npy holding the array ``text/csv``
  decodes to) and once with ``content_type="text/csv"`` (the default before).
- ``floor``: one process reading Arrow batches (DuckDB's Arrow reader; fedsage's
  PostgreSQL Arrow reader), ``model.predict`` in process (the same estimator fitted on
  the host's scikit-learn: the 0.23-1 pickle does not load there), writing with the
  engine's bulk path (DuckDB Arrow insert, PostgreSQL ``COPY``) in one transaction.

Each method runs in a fresh child process.  Peak memory is sampled every 0.1 s over the
whole process tree: the child, the model server it starts (supervisor, zygote, workers)
and the runtime's warm parent.  ``RSS`` sums the processes' resident sets (shared pages
counted once per process: an upper bound); ``PSS`` shares them out (also every 0.1 s:
psutil reads ``/proc/<pid>/smaps_rollup``; every 0.5 s, as before, missed short peaks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FEATURES = [f"f{k}" for k in range(6)]
METHODS = ("notebook loop", "fedsage batch_transform", "floor")
PSS_EVERY = 1  # PSS every tick (0.1 s)

SCRIPT = textwrap.dedent(
    """
    import os

    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LogisticRegression(max_iter=1000).fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)


def _columns_sql(gen: str) -> str:
    """bench/extract.py's 20 columns, with the features scaled to unit size."""
    cols = [f"({gen} * {k + 1}) % 100000 AS i{k}" for k in range(6)]
    cols += [f"CAST((({gen} * {k + 3}.25) % 1000) / 100.0 AS DOUBLE PRECISION) AS f{k}"
             for k in range(8)]
    cols += [f"'s' || (({gen} * {k + 7}) % 997)::VARCHAR AS s{k}" for k in range(5)]
    cols.append(f"TIMESTAMP '2024-01-01' + ({gen} % 86400) * INTERVAL '1 second' AS ts")
    return f"{gen} AS id, " + ", ".join(cols)


def create_tables(duck_path: str | None, pg_dsn: str | None, sizes: dict[str, int]) -> None:
    if duck_path:
        import duckdb

        with duckdb.connect(duck_path) as con:
            for name, n in sizes.items():
                con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {_columns_sql('i')} "
                            f"FROM range({n}) t(i)")
    if pg_dsn:
        import psycopg

        with psycopg.connect(pg_dsn, autocommit=True) as con:
            for name, n in sizes.items():
                con.execute(f"DROP TABLE IF EXISTS {name}")
                con.execute(f"CREATE UNLOGGED TABLE {name} AS SELECT "
                            f"{_columns_sql('i').replace('::VARCHAR', '::text')} "
                            f"FROM generate_series(0, {n - 1}) i")
                con.execute(f"VACUUM ANALYZE {name}")


def training_frame(url: str) -> Any:
    """Label + the six features of the first 20,000 rows (label: f0 + f1 > f2 + f3)."""
    from fedsage.data import DbConnection

    with DbConnection.from_url(url) as db:
        frame = db.query(f"SELECT {', '.join(FEATURES)} FROM small LIMIT 20000").to_pandas()
    label = ((frame.f0 + frame.f1) > (frame.f2 + frame.f3)).astype(int)
    frame.insert(0, "y", label)
    return frame


# -- children ------------------------------------------------------------------------


def child(method: str, url: str, raw: str, table: str, extra: str) -> None:
    start = time.perf_counter()
    options = json.loads(extra)
    if method == "notebook loop":
        rows = _notebook_loop(url, table, options["endpoint"])
    elif method.startswith("fedsage batch_transform"):
        from fedsage import DwcSagemaker
        from fedsage.data import DbConnection

        with DbConnection.from_url(url) as db:
            summary = DwcSagemaker(prefix="bench").batch_transform(
                options["job"], db.table(table), "scores_b", keep_columns=["id"],
                features=FEATURES, if_exists="replace", progress=False,
                workers=options.get("workers"), batch_rows=options["batch_rows"],
                content_type=options.get("content_type"),
            )
        rows = summary.rows_written
        options["startup"] = summary.startup_seconds
        options["content_type"] = summary.content_type
    else:
        rows = _floor(url, raw, table)
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "rows": rows, "startup": options.get("startup"),
                      "content_type": options.get("content_type")}))


def _notebook_loop(url: str, table: str, endpoint: str) -> int:
    import pandas as pd

    from fedsage import DwcSagemaker
    from fedsage.data import DbConnection

    dwc = DwcSagemaker(prefix="bench")
    with DbConnection.from_url(url) as db:
        rows, headers = db.get_data_with_headers(table)
        frame = pd.DataFrame(rows, columns=headers)
        features = frame[FEATURES]
        per_row = len(features.head(1000).to_csv(header=False, index=False)) / 1000
        step = int(6 * 1024 * 1024 * 0.9 / per_row)
        predictions: list[str] = []
        for begin in range(0, len(features), step):
            body = features.iloc[begin:begin + step].to_csv(header=False, index=False)
            answer = dwc.predict(endpoint, body, content_type="text/csv", accept="text/csv")
            predictions.extend(answer.split())
        db.create_table("CREATE TABLE scores_a (id BIGINT, prediction BIGINT)")
        for ident, prediction in zip(frame["id"], predictions, strict=True):
            db.insert_into_table(
                "scores_a", pd.DataFrame({"id": [int(ident)], "prediction": [int(prediction)]})
            )
    return len(predictions)


def _floor(url: str, raw: str, table: str) -> int:
    import numpy as np
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    train = training_frame(url)
    model = LogisticRegression(max_iter=1000).fit(train[FEATURES], train["y"])
    select = f"SELECT id, {', '.join(FEATURES)} FROM {table}"
    count = 0

    def scored(batch: pa.RecordBatch) -> pa.Table:
        x = np.column_stack([batch.column(i).to_numpy() for i in range(1, 7)])
        return pa.table({"id": batch.column(0), "prediction": model.predict(x)})

    if url.startswith("duckdb"):
        import duckdb

        con = duckdb.connect(raw)
        writer = con.cursor()
        writer.execute("BEGIN")
        writer.execute("CREATE TABLE scores_c (id BIGINT, prediction BIGINT)")
        relation = con.cursor().sql(select)
        reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
        for batch in reader(65536):
            out = scored(batch)
            writer.register("scored", out)
            writer.execute("INSERT INTO scores_c SELECT * FROM scored")
            writer.unregister("scored")
            count += out.num_rows
        writer.execute("COMMIT")
        con.close()
        return count
    import io

    import psycopg
    import pyarrow.csv as pacsv

    from fedsage.data import DbConnection

    with DbConnection.from_url(url) as db, psycopg.connect(raw) as out_con:
        out_con.execute("CREATE TABLE scores_c (id BIGINT, prediction BIGINT)")
        with out_con.cursor().copy("COPY scores_c FROM STDIN (FORMAT csv)") as copy:
            for batch in db.iter_batches(db.query(select)):
                out = scored(batch)
                buffer = io.BytesIO()
                pacsv.write_csv(out, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
                count += out.num_rows
        out_con.commit()
    return count


# -- the parent: memory of the whole tree ----------------------------------------------


class TreeMemory(threading.Thread):
    """Peak RSS (sum) and PSS (sum) of a child, its descendants, and the model servers
    and warm parents in this run's FEDSAGE_HOME."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.rss = 0.0
        self.pss = 0.0
        self.by_process: dict[str, float] = {}
        self.done = threading.Event()

    def _roots(self) -> list[int]:
        from fedsage.serving import endpoints, warm

        roots = [self.pid]
        roots += [e["Local"]["pid"] for e in endpoints.list_endpoints() if e["Local"]["pid"]]
        roots += [w["Pid"] for w in warm.list_warm_parents()]
        return roots

    def _processes(self) -> dict[int, Any]:
        import psutil

        found: dict[int, Any] = {}
        for root in self._roots():
            try:
                process = psutil.Process(root)
                found[process.pid] = process
                for kid in process.children(recursive=True):
                    found[kid.pid] = kid
            except psutil.Error:
                continue
        return found

    def run(self) -> None:
        import psutil

        tick = 0
        while not self.done.is_set():
            processes = self._processes()
            rss = pss = 0
            for process in processes.values():
                try:
                    rss += process.memory_info().rss
                    if tick % PSS_EVERY == 0:
                        one = process.memory_full_info().pss
                        pss += one
                        key = _role(process)
                        self.by_process[key] = max(self.by_process.get(key, 0.0), one / 2**20)
                except psutil.Error:
                    continue
            self.rss = max(self.rss, rss / 2**20)
            if tick % PSS_EVERY == 0:
                self.pss = max(self.pss, pss / 2**20)
            tick += 1
            self.done.wait(0.1)


def _role(process: Any) -> str:
    line = " ".join(process.cmdline())
    if "--child" in line:
        return "caller"
    if "--warm" in line:
        return "warm parent"
    if "serving.supervisor" in line:
        return "supervisor"
    if "_worker" in line:
        return f"worker/zygote {process.pid}"
    return process.name()


def measure(method: str, url: str, raw: str, table: str, options: dict[str, Any],
            ) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", method, url, raw, table, json.dumps(options)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    memory = TreeMemory(proc.pid)
    memory.start()
    out, err = proc.communicate()
    memory.done.set()
    memory.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(rss=memory.rss, pss=memory.pss)
    print(f"{method}: peak PSS by process (MB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in sorted(memory.by_process.items())),
          file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--loop-rows", type=int, default=50_000)
    parser.add_argument("--engines", default="duckdb,postgresql")
    parser.add_argument("--skip-loop", action="store_true", help="only fedsage and the floor")
    parser.add_argument("--skip-csv", action="store_true",
                        help="not the text/csv call (the default call and the floor only)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--child", nargs=5)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    engines = args.engines.split(",")
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import contextlib

    from _pgserver import postgres_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        os.environ["FEDSAGE_HOME"] = str(Path(tmp) / "home")
        cache = os.environ.get("FEDSAGE_TEST_RUNTIME_CACHE")
        if cache and "FEDSAGE_RUNTIMES_DIR" not in os.environ:
            os.environ["FEDSAGE_RUNTIMES_DIR"] = cache
        targets: dict[str, tuple[str, str]] = {}
        duck = os.path.join(tmp, "bench.duckdb") if "duckdb" in engines else None
        dsn = None
        if duck:
            targets["duckdb"] = (f"duckdb:///{duck}", duck)
        if "postgresql" in engines:
            server = stack.enter_context(postgres_server())
            dsn = (f"host=127.0.0.1 port={server.port} user=fedsage password=fedsage "
                   "dbname=postgres")
            targets["postgresql"] = (server.url, dsn)
        began = time.perf_counter()
        create_tables(duck, dsn, {"big": args.rows, "small": args.loop_rows})
        print(f"tables built in {time.perf_counter() - began:.0f}s", file=sys.stderr)

        from fedsage import DwcSagemaker

        os.chdir(tmp)
        Path("train.py").write_text(SCRIPT)
        dwc = DwcSagemaker(prefix="bench")
        first_url = next(iter(targets.values()))[0]
        job = dwc.train_sklearn_model(training_frame(first_url), train_script="train.py",
                                      wait=True, logs="None").job_name
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"{os.cpu_count()} cores; rows={args.rows:,}, loop timed on {args.loop_rows:,}\n")
        print("| engine | method | rows timed | wall s | rows/s | s for all rows | peak tree "
              "RSS MB | peak tree PSS MB | x notebook loop | x floor |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for engine, (url, raw) in targets.items():
            results: dict[str, dict[str, float]] = {}
            if not args.skip_loop:
                endpoint = dwc.deploy(job, 1, "local", cleanup_resources=False)
                try:
                    results["notebook loop"] = measure("notebook loop", url, raw, "small",
                                                       {"endpoint": endpoint})
                finally:
                    dwc.delete_endpoint(endpoint)
                results["notebook loop"]["all"] = (results["notebook loop"]["wall"]
                                                   * args.rows / args.loop_rows)
            options = {"job": job, "workers": args.workers, "batch_rows": args.batch_rows}
            results["fedsage batch_transform"] = measure("fedsage batch_transform", url, raw,
                                                         "big", options)
            if not args.skip_csv:
                csv = {**options, "content_type": "text/csv"}
                results["fedsage batch_transform (text/csv)"] = measure(
                    "fedsage batch_transform (text/csv)", url, raw, "big", csv
                )
            results["floor"] = measure("floor", url, raw, "big", {})
            for method in results:
                if method != "notebook loop":
                    results[method]["all"] = results[method]["wall"]
            loop = results.get("notebook loop", {}).get("all")
            floor = results["floor"]["all"]
            for method, r in results.items():
                x_loop = f"{loop / r['all']:.1f}" if loop else "-"
                print(f"| {engine} | {method} | {int(r['rows']):,} | {r['wall']:.2f} | "
                      f"{r['rows'] / r['wall']:,.0f} | {r['all']:.1f} | {r['rss']:,.0f} | "
                      f"{r['pss']:,.0f} | {x_loop} | {r['all'] / floor:.2f} |", flush=True)
            for method in ("fedsage batch_transform", "fedsage batch_transform (text/csv)"):
                startup = results.get(method, {}).get("startup")
                if startup:
                    print(f"|  | ({method}: sent {results[method].get('content_type')}; "
                          f"model server start {startup:.2f} s, overlapping the read) "
                          "|  |  |  |  |  |  |  |  |", flush=True)
        load = os.getloadavg()
        print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
