"""SageMaker's built-in XGBoost, locally: training overhead and serving (issue 18).

Run:  .venv/bin/python bench/xgboost.py [--versions 1.7-1 3.0-5] [--only train,serve]
                                        [--runs 7] [--duration 5] [--connections 1,8]

**Training overhead** (target: at most 0.5 s on a warm runtime).  The same rows
(``--rows`` x ``--features``, label first, no header) and hyperparameters trained

- *bare*: ``runtime/bin/python bare.py data.csv``, a script that imports xgboost, reads
  the CSV with pandas, builds a ``DMatrix``, calls ``xgboost.train`` (train set watched,
  as the image does) and saves the model: what a user would run by hand, in the same
  runtime;
- *DataFrame*: ``DwcSagemaker.train_sagemaker_model(frame, 'xgboost', version, ...,
  wait=True)`` in local mode;
- *CSV file*: the same from the path of the CSV file.

The three run in turns, ``--runs`` rounds after a warm-up round (the runtime is built, its
files are in the page cache), each round starting with the next one; medians of wall time
and of CPU time (user + system of this process and every process it reaped: bare.py, or
the job's runner and algorithm process, which is what load from other jobs changes
least).  ``added`` = median of the job - median of bare.  Beside it, where the job's wall
time goes: ``call`` (the facade until the job exists: checks, channel writing), the
runner's phases from the job's status transitions (``Starting`` = runner start-up,
``Downloading`` = ``/opt/ml`` tree and channel copies, ``Training`` = the algorithm
process, ``Uploading`` = ``model.tar.gz``/``output.tar.gz``) and ``wait`` (from the job's
end to ``train_sagemaker_model`` returning), and bare.py's own import/load/train/save.
``nthread=1`` is among the hyperparameters: see ``HYPERPARAMETERS``.

**Serving**: a model trained by the algorithm (``xgboost-model``) served with 2 workers by

- ``fedsage-<version>``: fedsage's model server (``fedsage.serving.supervisor``) with the
  algorithm's handlers, as a local endpoint gets it (``builtin_xgb.serving_env()``);
- ``flask-<version>``: the "Flask stack": gunicorn (gevent workers, as the image's
  ``serve`` starts them) running a minimal Flask app with the image's inference logic
  (load ``xgboost-model``; ``text/csv``: strip, sniff the delimiter, ``DMatrix``,
  ``predict(validate_features=False)``, one prediction per line; ``text/libsvm`` likewise),
  in the SAME runtime's interpreter, with the runtime's own Flask 1.1.1/gunicorn/gevent
  (the image's pins) or, when a runtime lacks them, Flask and gunicorn installed with the
  runtime's pip into a ``--target`` folder under ``--bench-dir`` put on ``PYTHONPATH`` (the
  runtime cache is never modified);

with one row and 1,000 rows as CSV and libsvm, ``wrk`` at ``--connections`` (req/s, p99).
Both stacks run with ``OMP_NUM_THREADS=1`` (fedsage's default for these endpoints, the
image's serving entry point's); ``--omp`` adds fedsage with ``OMP_NUM_THREADS`` = the
number of CPUs and the Flask stack with it unset, to show what one thread per worker is
worth.  A stack that fails is noted and the others still run.

The machine may be shared: the load average before and after is printed; use medians
(``--repeat``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_BENCH = str(Path(__file__).resolve().parent)
sys.path.insert(0, _BENCH)
from serving import free_port, process, run_wrk, tree_cpu, wait_ping  # noqa: E402

# This file is named xgboost.py: keep its folder off the path so nothing imports it as xgboost.
sys.path[:] = [p for p in sys.path if p not in (_BENCH, "")]

HYPERPARAMETERS = {
    "num_round": 10,
    "max_depth": 4,
    "eta": 0.3,
    "objective": "reg:squarederror",
    # One thread: on a shared 2-core machine xgboost's OpenMP threads wait for each other
    # and for other jobs, which makes every run's training time (both sides) erratic.
    "nthread": 1,
}
BARE = """
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
import xgboost as xgb
t1 = time.perf_counter()
data_path, params_json, model_path = sys.argv[1:4]
params = json.loads(params_json)
num_round = int(params.pop("num_round"))
frame = pd.read_csv(data_path, header=None)
dtrain = xgb.DMatrix(frame.iloc[:, 1:].to_numpy(), label=frame.iloc[:, 0].to_numpy())
t2 = time.perf_counter()
booster = xgb.train(params, dtrain, num_round, evals=[(dtrain, "train")], verbose_eval=True)
t3 = time.perf_counter()
booster.save_model(model_path)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "train": t3 - t2, "save": t4 - t3}),
      file=sys.stderr)
"""
# The image's algorithm-mode inference (sagemaker_xgboost_container.algorithm_mode.serve
# and serve_utils), reduced to what these requests need: text/csv and text/libsvm in,
# text/csv out.
FLASK_APP = """
import csv, os
import flask
import numpy as np
import xgboost as xgb
from scipy.sparse import csr_matrix

app = flask.Flask(__name__)
booster = xgb.Booster()
booster.load_model(os.path.join(os.environ["MODEL_DIR"], "xgboost-model"))
booster.set_param("nthread", 1)  # as the image's loader (and fedsage's load_booster)


def csv_dmatrix(text):
    delimiter = csv.Sniffer().sniff(text.split("\\n")[0][:512]).delimiter
    delimiter = "," if delimiter.isalnum() else delimiter
    rows = [["nan" if c == "" else c for c in line.split(delimiter)]
            for line in text.split("\\n")]
    return xgb.DMatrix(np.array(rows).astype(float))


def libsvm_dmatrix(text):
    row, col, values = [], [], []
    for index, line in enumerate(text.split("\\n")):
        for item in line.split(" "):
            if ":" in item:
                key, value = item.split(":")
                row.append(index)
                col.append(key)
                values.append(value)
    return xgb.DMatrix(csr_matrix((np.array(values).astype(float),
                                   (np.array(row), np.array(col).astype(int)))))


@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response(status=200)


@app.route("/invocations", methods=["POST"])
def invocations():
    body = flask.request.data
    if len(body) == 0:
        return flask.Response(response="", status=204)
    content_type = (flask.request.content_type or "text/libsvm").split(";")[0].strip().lower()
    text = body.strip().decode("utf-8")
    dtest = csv_dmatrix(text) if content_type == "text/csv" else libsvm_dmatrix(text)
    predictions = booster.predict(dtest, validate_features=False)
    out = "".join(f"{value}\\n" for value in predictions.tolist())
    return flask.Response(response=out, status=200, mimetype="text/csv")
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def make_data(rows: int, features: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = x[:, 0] * 2.0 - x[:, 1] + 0.1 * rng.normal(size=rows)
    return pd.DataFrame(np.column_stack([y, x]))


# ------------------------------------------------------------------ training
def _cpu() -> float:
    """CPU seconds (user + system) of this process and every child it has reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def job_phases(described: dict) -> dict[str, float]:
    """Seconds per secondary status of a finished job."""
    out: dict[str, float] = {}
    for item in described.get("SecondaryStatusTransitions", []):
        end = item.get("EndTime")
        if end is not None:
            out[item["Status"]] = (end - item["StartTime"]).total_seconds()
    return out


class TrainingCase:
    """One runtime's three ways of training the same rows, run in turns."""

    def __init__(self, dwc: Any, runtime: Any, version: str, frame: Any, csv_path: Path,
                 work: Path) -> None:
        self.dwc, self.runtime, self.version = dwc, runtime, version
        self.frame, self.csv_path = frame, csv_path
        script = work / "bare.py"
        script.write_text(BARE)
        self.bare_argv = [str(runtime.python), str(script), str(csv_path),
                          json.dumps(HYPERPARAMETERS), str(work / "bare-model")]
        self.bare_env = {"PATH": os.environ.get("PATH", ""), **runtime.env}
        self.wall: dict[str, list[float]] = {"bare": [], "DataFrame": [], "CSV file": []}
        self.cpu: dict[str, list[float]] = {k: [] for k in self.wall}
        self.phases: dict[str, list[dict[str, float]]] = {k: [] for k in self.wall}

    def bare(self, keep: bool) -> None:
        cpu, start = _cpu(), time.perf_counter()
        done = subprocess.run(self.bare_argv, env=self.bare_env, check=True,
                              capture_output=True, text=True)
        took, used = time.perf_counter() - start, _cpu() - cpu
        if keep:
            self.wall["bare"].append(took)
            self.cpu["bare"].append(used)
            self.phases["bare"].append(json.loads(done.stderr.strip().splitlines()[-1]))

    def job(self, label: str, keep: bool) -> None:
        from fedsage.backends import local

        data = self.frame if label == "DataFrame" else str(self.csv_path)
        cpu, start, wall = _cpu(), time.perf_counter(), time.time()
        estimator = self.dwc.train_sagemaker_model(
            data, "xgboost", self.version, hyperparameters=HYPERPARAMETERS, wait=True,
            logs="None",
        )
        took = time.perf_counter() - start
        # Reap the runner so that its CPU (and its algorithm process's) is counted.
        for runner in list(local._RUNNERS.values()):
            runner.wait()
        used = _cpu() - cpu
        described = estimator.describe()
        if described["TrainingJobStatus"] != "Completed":
            raise RuntimeError(f"job failed: {described.get('FailureReason')}")
        if not keep:
            return
        phase = job_phases(described)
        created = described["CreationTime"].timestamp()
        ended = described["TrainingEndTime"].timestamp()
        phase["call"] = created - wall
        phase["wait"] = took - (ended - wall)
        self.wall[label].append(took)
        self.cpu[label].append(used)
        self.phases[label].append(phase)

    def median_phases(self, label: str) -> dict[str, float]:
        rows = self.phases[label]
        return {k: _median([r.get(k, float("nan")) for r in rows]) for k in rows[0]}


def bench_training(args: argparse.Namespace, work: Path) -> list[TrainingCase]:
    from fedsage import DwcSagemaker
    from fedsage.builtin import xgboost as builtin_xgb

    frame = make_data(args.rows, args.features)
    csv_path = work / "data.csv"
    frame.to_csv(csv_path, header=False, index=False)
    dwc = DwcSagemaker(prefix="bench", mode="local")
    cases = []
    for version in args.versions:
        case = TrainingCase(dwc, builtin_xgb.resolve_runtime(version), version, frame,
                            csv_path, work)
        # In turns, so that a change of load hits the three alike, each round starting
        # with the next one (what runs right after another has its own cost: page cache,
        # the previous process's exit); the first round warms.
        steps = ["bare", "DataFrame", "CSV file"]
        for index in range(args.runs + 1):
            for step in steps[index % 3:] + steps[: index % 3]:
                if step == "bare":
                    case.bare(index > 0)
                else:
                    case.job(step, index > 0)
        for label in case.wall:
            print(f"# {version} {label}: wall {_median(case.wall[label]):.3f} s, CPU "
                  f"{_median(case.cpu[label]):.3f} s, {case.median_phases(label)}",
                  file=sys.stderr)
        cases.append(case)
    return cases


def _spread(values: list[float]) -> str:
    return f"{_median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def print_training(cases: list[TrainingCase], args: argparse.Namespace) -> None:
    print(f"\ntraining: {args.rows:,} rows x {args.features} features, "
          f"{HYPERPARAMETERS}; median of {args.runs} runs (min-max), seconds; "
          "CPU = user + system of every process involved")
    print("\n| runtime | python | measure | bare xgboost.train | from DataFrame | added | "
          "from CSV file | added |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for case in cases:
        for measure, table in (("wall", case.wall), ("CPU", case.cpu)):
            bare = _median(table["bare"])
            cells = [_spread(table["bare"])]
            for label in ("DataFrame", "CSV file"):
                cells.append(_spread(table[label]))
                cells.append(f"**{_median(table[label]) - bare:.3f}**")
            print(f"| {case.version} | {case.runtime.python_version} | {measure} | "
                  + " | ".join(cells) + " |")
    print("\nwhere the wall time goes (medians, seconds): call = the facade until the job "
          "exists (checks, channel writing), Starting = runner start-up, Downloading = "
          "/opt/ml tree, Training = the algorithm process, Uploading = artifacts, wait = "
          "from the job's end to the call's return; bare = inside bare.py")
    print("\n| runtime | input | call | Starting | Downloading | Training | Uploading | wait |")
    print("| --- | --- |" + " ---: |" * 6)
    for case in cases:
        for label in ("DataFrame", "CSV file"):
            p = case.median_phases(label)
            cells = [p.get(k, float("nan")) for k in
                     ("call", "Starting", "Downloading", "Training", "Uploading", "wait")]
            print(f"| {case.version} | {label} | " + " | ".join(f"{c:.3f}" for c in cells)
                  + " |")
        b = case.median_phases("bare")
        print(f"| {case.version} | bare.py | | | | import {b['import']:.3f}, load "
              f"{b['load']:.3f}, train {b['train']:.3f}, save {b['save']:.3f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["1.7-1", "3.0-5"])
    parser.add_argument("--only", default="train,serve")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk cell")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per cell (median)")
    parser.add_argument("--omp", action="store_true", help="also vary OMP_NUM_THREADS")
    parser.add_argument("--payloads", default="", help="comma list of " + ",".join(PAYLOADS))
    parser.add_argument(
        "--bench-dir", type=Path, default=Path(tempfile.gettempdir()) / "fedsage-bench"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="fedsage-bench-xgb-"))
    from fedsage.runtimes.build import RUNTIMES_DIR_ENV, runtimes_root

    cache = os.environ.get("FEDSAGE_TEST_RUNTIME_CACHE")
    os.environ.setdefault(RUNTIMES_DIR_ENV, cache or str(runtimes_root()))
    os.environ["FEDSAGE_HOME"] = str(work / "home")
    os.environ["FEDSAGE_MODE"] = "local"
    os.chdir(work)
    import warnings

    warnings.simplefilter("ignore")
    load_before = _load()
    print(f"# work folder {work}; load average before {load_before}", file=sys.stderr)
    training = bench_training(args, work) if "train" in only else []
    serving = bench_serving(args, work) if "serve" in only else {}
    load_after = _load()
    print(f"\n{os.cpu_count()} CPUs; load average (1/5/15 min) before {load_before}, "
          f"after {load_after}")
    if training:
        print_training(training, args)
    if serving:
        print_serving(serving, args)
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ serving
PAYLOADS = ("csv-1", "csv-1000", "libsvm-1", "libsvm-1000")
CONTENT_TYPES = {"csv": "text/csv", "libsvm": "text/libsvm"}
LUA = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["Accept"] = "text/csv"
"""


def write_bodies(frame: Any, work: Path) -> dict[str, tuple[Path, bytes]]:
    """``{payload: (wrk lua script, body)}``: feature rows (no label) as CSV and libsvm."""
    features = frame.iloc[:, 1:].to_numpy()
    out = {}
    for name in PAYLOADS:
        fmt, n = name.split("-")
        rows = features[: int(n)].tolist()
        if fmt == "csv":
            text = "\n".join(",".join(repr(v) for v in row) for row in rows)
        else:
            text = "\n".join(" ".join(f"{i}:{v!r}" for i, v in enumerate(row)) for row in rows)
        body = work / f"{name}.body"
        body.write_text(text)
        lua = work / f"{name}.lua"
        lua.write_text(LUA.format(body=body, content_type=CONTENT_TYPES[fmt]))
        out[name] = (lua, text.encode())
    return out


def flask_python_path(runtime: Any, bench_dir: Path) -> str | None:
    """``None`` when the runtime has Flask and gunicorn (the image's); else a --target folder.

    The folder is filled by the runtime's own pip and put on ``PYTHONPATH``; the runtime
    itself is never changed.
    """
    probe = subprocess.run([str(runtime.python), "-c", "import flask, gunicorn, gevent"],
                           capture_output=True, env={**os.environ, **runtime.env})
    if probe.returncode == 0:
        return None
    target = bench_dir / f"flask-target-{runtime.framework_version}"
    if not (target / "flask").is_dir():
        subprocess.run([str(runtime.python), "-m", "pip", "install", "-q", "--target",
                        str(target), "flask", "gunicorn", "gevent"], check=True)
    return str(target)


@contextlib.contextmanager
def start_stack(kind: str, runtime: Any, model_dir: Path, port: int, work: Path,
                workers: int, omp: str | None, bench_dir: Path):
    """Start one server; yield its root PIDs; stop its process group afterwards."""
    from fedsage.builtin import xgboost as builtin_xgb
    from fedsage.serving.supervisor import ServerConfig

    label = f"{kind}-{runtime.framework_version}-omp{omp or 'unset'}"
    log = work / f"{label}.log"
    if kind == "fedsage":
        user = {} if omp is None else {"OMP_NUM_THREADS": omp}
        config = ServerConfig(
            model_dir=str(model_dir), python=str(runtime.python),
            code_dir=str(builtin_xgb.SERVING_DIR), program=builtin_xgb.SERVING_PROGRAM,
            port=port, workers=workers, env={**runtime.env, **builtin_xgb.serving_env(user)},
            runtime=runtime.framework_version,
        )
        (work / f"{label}.json").write_text(config.to_json())
        argv = [sys.executable, "-m", "fedsage.serving.supervisor", "--config",
                str(work / f"{label}.json")]
        with process(argv, log) as pid:
            yield (pid,)
        return
    (work / "xgbflask.py").write_text(FLASK_APP)
    env = {"PATH": os.environ.get("PATH", ""), **runtime.env, "MODEL_DIR": str(model_dir)}
    extra = flask_python_path(runtime, bench_dir)
    if extra:
        env["PYTHONPATH"] = extra
    env.pop("OMP_NUM_THREADS", None)
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    # The image's serving stack: gunicorn with gevent workers, one per CPU (here --workers).
    argv = [str(runtime.python), "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
            "--worker-connections", str(1000 * workers), "--timeout", "60", "--chdir",
            str(work), "-b", f"127.0.0.1:{port}", "xgbflask:app"]
    with process(argv, log, env) as pid:
        yield (pid,)


def bench_serving(args: argparse.Namespace, work: Path) -> dict:
    import httpx

    from fedsage.builtin import xgboost as builtin_xgb

    frame = make_data(args.rows, args.features)
    csv_path = work / "data.csv"
    if not csv_path.exists():
        frame.to_csv(csv_path, header=False, index=False)
    bodies = write_bodies(frame, work)
    conns = [int(c) for c in args.connections.split(",")]
    payloads = [p for p in PAYLOADS if not args.payloads or p in args.payloads.split(",")]
    cpus = str(os.cpu_count() or 2)
    variants: list[tuple[str, str | None]] = [("fedsage", None), ("flask", "1")]
    if args.omp:
        variants += [("fedsage", cpus), ("flask", None)]
    results: dict = {}
    for version in args.versions:
        runtime = builtin_xgb.resolve_runtime(version)
        model_dir = work / f"model-{version}"
        model_dir.mkdir(exist_ok=True)
        subprocess.run([str(runtime.python), "-c", BARE, str(csv_path),
                        json.dumps(HYPERPARAMETERS), str(model_dir / "xgboost-model")],
                       check=True, capture_output=True, env={**os.environ, **runtime.env})
        answers = {}
        for kind, omp in variants:
            omp_label = omp or ("1 (default)" if kind == "fedsage" else "unset")
            stack = (kind, version, omp_label)
            try:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                with start_stack(kind, runtime, model_dir, port, work, args.workers, omp,
                                 args.bench_dir) as roots:
                    wait_ping(url + "/ping")
                    check = httpx.post(url + "/invocations", content=bodies["csv-1000"][1],
                                       headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                                       timeout=120)
                    check.raise_for_status()
                    answers[stack] = [float(v) for v in check.text.split()]
                    run_wrk(url + "/invocations", bodies["csv-1000"][0], 8, 3)  # warm-up
                    for name in payloads:
                        for c in conns:
                            runs = []
                            for _ in range(args.repeat):
                                cpu = tree_cpu(roots)
                                runs.append(run_wrk(url + "/invocations", bodies[name][0], c,
                                                    args.duration))
                                runs[-1]["cpu_ms"] = (1e3 * (tree_cpu(roots) - cpu)
                                                      / max(runs[-1]["requests"], 1))
                            r = {k: _median([x[k] for x in runs]) for k in runs[0]}
                            results[(stack, name, c)] = r
                            print(f"# {kind:8} {version} omp={omp_label:12} {name:12} c={c:<2} "
                                  f"{r['rps']:8.0f} req/s p99 {r['p99']:7.2f} ms CPU "
                                  f"{r['cpu_ms']:.3f} ms/req non-2xx {r['non2xx']:.0f} "
                                  f"load {_load()}", file=sys.stderr)
            except Exception as exc:  # one stack failing must not hide the others
                results[("note", stack)] = f"{type(exc).__name__}: {exc}"
                print(f"# {kind} {version} omp={omp_label}: failed ({exc})", file=sys.stderr)
        first = next(iter(answers.values()), [])
        for stack, values in answers.items():
            same = len(values) == len(first) and all(
                abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(values, first, strict=False))
            results[("same", stack)] = same
    return results


def print_serving(results: dict, args: argparse.Namespace) -> None:
    print(f"\nserving: the model of the training rows, {args.workers} workers each, wrk "
          f"{args.duration} s per cell, median of {args.repeat}; CPU = the server processes' "
          "own user + system time per request")
    print("\n| stack | runtime | OMP_NUM_THREADS | payload | conns | req/s | p50 ms | p99 ms "
          "| server CPU ms/req | non-2xx |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    cells = sorted(
        ((k[0], k[1], k[2]) for k in results if k[0] not in ("same", "note")),
        key=lambda k: (k[0][1], k[1], k[2], k[0][0], k[0][2]),
    )
    for stack, name, c in cells:
        r = results[(stack, name, c)]
        print(f"| {stack[0]} | {stack[1]} | {stack[2]} | {name} | {c} | {r['rps']:,.0f} | "
              f"{r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_ms']:.3f} | {int(r['non2xx'])} |")
    for key, note in results.items():
        if key[0] == "note":
            print(f"\n{' '.join(key[1])}: {note}")
    same = [k[1] for k in results if k[0] == "same"]
    differ = [s for s in same if not results[("same", s)]]
    print(f"\nsame predictions for csv-1000 from every stack: {not differ}"
          + (f" (differ: {differ})" if differ else ""))
    print("\nfedsage / Flask stack (both OMP_NUM_THREADS=1):")
    for (stack, name, c), r in sorted(
        ((k, v) for k, v in results.items() if k[0] not in ("same", "note")
         and k[0][0] == "fedsage"
         and k[0][2].startswith("1")), key=lambda kv: (kv[0][0][1], kv[0][1], kv[0][2])
    ):
        flask = results.get((("flask", stack[1], "1"), name, c))
        if flask:
            print(f"- {stack[1]} {name} c={c}: {r['rps'] / flask['rps']:.2f}x req/s, p99 "
                  f"{r['p99']:.2f} vs {flask['p99']:.2f} ms, server CPU "
                  f"{flask['cpu_ms'] / r['cpu_ms']:.2f}x less")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
