"""Serving benchmark: fedsage's model server against the stacks people use today.

Run:  .venv/bin/python bench/serving.py [--duration 5] [--only fedsage,flask,...]

Load generator: ``wrk`` (Debian package) with ``--latency``.  Every stack serves the same
LogisticRegression (4 features) on 127.0.0.1 with 2 worker processes:

- ``fedsage``: ``fedsage.serving.supervisor`` on the host runtime (scikit-learn of
  fedsage's environment): raw asyncio protocol, one ``SO_REUSEPORT`` socket per worker,
  workers forked from a zygote that loaded the model;
- ``fedsage-0.23-1``: the same on the default runtime ``0.23-1`` (Python 3.7,
  scikit-learn 0.23.2; the model trained under it), built by
  ``fedsage.runtimes.resolve_runtime`` on first use;
- ``kyma-nginx-0.23-1``: the Kyma stack (nginx -> gunicorn/gevent -> Flask) running in the
  0.23-1 runtime with the image's own Flask 1.1.1, gunicorn 20.0.4 and gevent, on the
  0.23-1 model -- the like-for-like reference for ``fedsage-0.23-1``;
- ``flask-gunicorn``: Flask under gunicorn (gevent workers, as the SageMaker scikit-learn
  image runs them) with the image's default decode/predict/encode handlers;
- ``flask-gunicorn-0.23-1``: the same inside the 0.23-1 runtime (the image's own Flask,
  gunicorn and gevent, scikit-learn 0.23.2) on the 0.23-1 model: SageMaker's scikit-learn
  0.23-1 serving stack, the like-for-like reference for ``fedsage-0.23-1``;
- ``kyma-nginx``: fedml-aws's Kyma image stack, nginx -> gunicorn (unix socket) -> Flask;
- ``mlflow``: ``mlflow models serve`` of the same model (``--env-manager local``);
- ``floor-http.server``: the standard library's ThreadingHTTPServer returning a constant;
- ``floor-asyncio``: a 2-process raw asyncio server returning a constant (upper reference).

Flask, gunicorn and mlflow live in separate virtualenvs under ``--bench-dir`` (created
with uv on first use), never in fedsage's own dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from fedsage.runtimes import resolve_runtime
from fedsage.runtimes.base import Runtime, host_runtime
from fedsage.serving import create_endpoint, delete_endpoint
from fedsage.serving.supervisor import ServerConfig

ROW = [0.9, 0.8, 0.1, 0.2]
INFERENCE = (
    "import os, joblib\n\ndef model_fn(model_dir):\n"
    "    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n"
)
TRAIN = """
import sys
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
rng = np.random.RandomState(0)
X = rng.rand(1000, 4)
joblib.dump(LogisticRegression().fit(X, (X[:, 0] + X[:, 1] > 1).astype(int)), sys.argv[1])
"""
FLASK_APP = """
import csv, io, json, os
import flask, joblib, numpy as np
app = flask.Flask(__name__)
model = joblib.load(os.environ["MODEL_PATH"])

def decode(body, content_type):  # sagemaker_containers._encoders
    if content_type == "application/json":
        return np.array(json.loads(body))
    if content_type == "text/csv":
        rows = list(csv.reader(io.StringIO(body), delimiter=",", quotechar='"',
                               doublequote=True, strict=True))
        return np.array(rows).squeeze().astype(None)
    raise ValueError(content_type)

def encode(prediction, accept):
    if accept == "text/csv":
        stream = io.StringIO()
        np.savetxt(stream, prediction, delimiter=",", fmt="%s")
        return stream.getvalue(), "text/csv; charset=utf-8"
    return json.dumps(prediction, default=lambda x: x.tolist()), "application/json"

@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response(status=200, mimetype="application/json")

@app.route("/invocations", methods=["POST"])
def invocations():
    content_type = flask.request.headers.get("ContentType", flask.request.content_type)
    accept = flask.request.headers.get("Accept", "application/json")
    if accept == "*/*":
        accept = "application/json"
    body = flask.request.get_data()
    if content_type in ("application/json", "text/csv"):
        body = body.decode("utf-8")
    data = decode(body, content_type).astype(np.float32)
    if data.ndim == 1:  # the image would answer 500 here; reshape so all stacks do the same work
        data = data.reshape(1, -1)
    body, mimetype = encode(model.predict(data), accept)
    return flask.Response(response=body, status=200, mimetype=mimetype)
"""
FLOOR_HTTP_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"[1]")
    do_GET = do_POST
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
FLOOR_ASYNCIO = """
import asyncio, os, socket, sys
RESPONSE = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
            b"Content-Length: 3\\r\\n\\r\\n[1]")
class Proto(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\\r\\n\\r\\n")
            if end < 0:
                return
            m = self.buf.lower().find(b"content-length:", 0, end)
            n = int(self.buf[m + 15:self.buf.find(b"\\r\\n", m)]) if m >= 0 else 0
            if len(self.buf) < end + 4 + n:
                return
            self.buf = self.buf[end + 4 + n:]
            self.t.write(RESPONSE)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(1024)
child = os.fork()
loop = asyncio.new_event_loop()
loop.run_until_complete(loop.create_server(Proto, sock=sock))
loop.run_forever()
"""
NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err;
user root;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  upstream gunicorn {{ server unix:{tmp}/gunicorn.sock; }}
  server {{
    listen 127.0.0.1:{port} deferred;
    client_max_body_size 0;
    keepalive_requests 1000000;
    location ~ ^/(ping|invocations) {{
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_read_timeout 60s;
      proxy_pass http://gunicorn;
    }}
    location / {{ return 404 "{{}}"; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ping(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 in {timeout}s")


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """Start a server in its own session; stop exactly that process group afterwards."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(0.5)  # let the group's children go


def ensure_venv(bench_dir: Path, name: str, packages: list[str]) -> Path | None:
    python = bench_dir / name / "bin" / "python"
    if python.exists():
        return python
    uv = [sys.executable, "-m", "uv"]
    try:
        subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(bench_dir / name)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "-q", "--python", str(python), *packages], check=True
        )
    except subprocess.CalledProcessError as exc:
        print(f"# {name}: cannot build its venv ({exc}); skipped", file=sys.stderr)
        return None
    return python


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, lua: Path, connections: int, duration: int) -> dict[str, float]:
    threads = min(connections, 2)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    argv += ["--latency", "-s", str(lua), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "sockerr": 1.0 if errors else 0.0,
    }


def lua_script(path: Path, body_file: Path, content_type: str, accept: str) -> Path:
    path.write_text(
        textwrap.dedent(f"""
        local f = io.open("{body_file}", "rb")
        wrk.method = "POST"
        wrk.body = f:read("*a")
        f:close()
        wrk.headers["Content-Type"] = "{content_type}"
        wrk.headers["Accept"] = "{accept}"
        """)
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--bench-dir", type=Path, default=Path(tempfile.gettempdir()) / "fedsage-bench"
    )
    parser.add_argument("--only", default="", help="comma list of stacks")
    parser.add_argument("--payloads", default="", help="comma list of csv-1,csv-1000,json-1")
    parser.add_argument("--deploys", type=int, default=3, help="deploy-to-healthy repetitions")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median kept)")
    parser.add_argument(
        "--runtime", default="0.23-1", help="framework runtime of the fedsage-RT rows ('' skips)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    args.bench_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fedsage-bench-"))
    model_dir = work / "model"
    model_dir.mkdir()
    rng = np.random.RandomState(0)
    X = rng.rand(1000, 4)
    model = LogisticRegression().fit(X, (X[:, 0] + X[:, 1] > 1).astype(int))
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "inference.py").write_text(INFERENCE)
    runtime = None
    rt_dir = work / "model-rt"
    notes: list[str] = []
    if args.runtime:
        try:
            runtime = resolve_runtime(args.runtime)
            rt_dir.mkdir()
            subprocess.run(
                [str(runtime.python), "-c", TRAIN, str(rt_dir / "model.joblib")],
                check=True,
                env={**os.environ, **runtime.env},
            )
            (rt_dir / "inference.py").write_text(INFERENCE)
        except Exception as exc:
            notes.append(f"runtime {args.runtime}: unusable ({exc}); its rows are skipped")
            runtime = None
    payloads = {
        "csv-1": (",".join(map(str, ROW)).encode(), "text/csv"),
        "csv-1000": ("\n".join(",".join(f"{v:.6f}" for v in r) for r in X).encode(), "text/csv"),
        "json-1": (json.dumps([ROW]).encode(), "application/json"),
    }
    mlflow_payloads = {  # mlflow's own input formats for the same data
        "csv-1": (b"0,1,2,3\n" + payloads["csv-1"][0], "text/csv"),
        "csv-1000": (b"0,1,2,3\n" + payloads["csv-1000"][0], "text/csv"),
        "json-1": (json.dumps({"inputs": [ROW]}).encode(), "application/json"),
    }
    scripts: dict[str, dict[str, Path]] = {"default": {}, "mlflow": {}}
    for kind, table in (("default", payloads), ("mlflow", mlflow_payloads)):
        for name, (body, ctype) in table.items():
            (work / f"{kind}-{name}.body").write_bytes(body)
            accept = "application/json"
            scripts[kind][name] = lua_script(
                work / f"{kind}-{name}.lua", work / f"{kind}-{name}.body", ctype, accept
            )
    conns = [int(c) for c in args.connections.split(",")]
    if args.payloads:
        payloads = {k: v for k, v in payloads.items() if k in args.payloads.split(",")}
    stacks = [
        "fedsage",
        *([f"fedsage-{runtime.framework_version}"] if runtime else []),
        "flask-gunicorn",
        *([f"flask-gunicorn-{runtime.framework_version}"] if runtime else []),
        "kyma-nginx",
        *([f"kyma-nginx-{runtime.framework_version}"] if runtime else []),
        "mlflow",
        "floor-http.server",
        "floor-asyncio",
    ]
    if args.only:
        stacks = [s for s in stacks if s in args.only.split(",")]
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    load_before = os.getloadavg()
    sk = f"scikit-learn=={sklearn.__version__}"
    for stack in stacks:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / f"{stack}.log"
        kind = "default"
        try:
            rt = runtime if runtime and stack.endswith(runtime.framework_version) else None
            mdir = rt_dir if rt else model_dir
            with start_stack(stack, port, args, mdir, work, log, sk, notes, rt) as ready:
                if ready is None:
                    continue
                kind = ready
                wait_ping(url + ("/health" if kind == "mlflow" else "/ping"))
                # warm-up: every worker loaded its model (gunicorn/mlflow load lazily too)
                run_wrk(url + "/invocations", scripts[kind]["csv-1"], 8, max(3, args.duration))
                for name in payloads:
                    for c in conns:
                        runs = [
                            run_wrk(url + "/invocations", scripts[kind][name], c, args.duration)
                            for _ in range(args.repeat)
                        ]
                        results[(stack, name, c)] = {
                            k: statistics.median(r[k] for r in runs) for k in runs[0]
                        }
                        r = results[(stack, name, c)]
                        print(
                            f"# {stack:18} {name:9} c={c:<3} {r['rps']:9.0f} req/s "
                            f"p50 {r['p50']:7.2f} ms p99 {r['p99']:7.2f} ms",
                            file=sys.stderr,
                        )
        except Exception as exc:  # one stack failing must not hide the others
            notes.append(f"{stack}: failed ({exc}); log {log}")
    deploys = {"host": measure_deploy(model_dir, work, args.deploys, host_runtime(), args.workers)}
    if runtime is not None:
        deploys[runtime.framework_version] = measure_deploy(
            rt_dir, work, args.deploys, runtime, args.workers
        )
    load_after = os.getloadavg()
    print(
        f"\nwrk -t min(c,2) -c C -d {args.duration}s --latency, {args.workers} workers per stack, "
        f"median of {args.repeat} run(s) per cell; load average before "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f} "
        f"(1/5 min) on {os.cpu_count()} cores"
    )
    print_table(results, stacks, list(payloads), conns)
    for version, times in deploys.items():
        print(
            f"\ndeploy-to-healthy (create_endpoint, {version} runtime, {args.workers} workers): "
            + ", ".join(f"{d:.2f}s" for d in times)
            + f"; median {statistics.median(times):.2f}s"
        )
    print_targets(results, runtime.framework_version if runtime else None)
    for note in notes:
        print("note:", note)
    shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def start_stack(
    stack: str,
    port: int,
    args: argparse.Namespace,
    model_dir: Path,
    work: Path,
    log: Path,
    sk: str,
    notes: list[str],
    runtime: Runtime | None = None,
) -> Iterator[str | None]:
    env = {**os.environ, "MODEL_PATH": str(model_dir / "model.joblib")}
    w = str(args.workers)
    if stack.startswith("fedsage"):
        config = ServerConfig(
            model_dir=str(model_dir),
            code_dir=str(model_dir),
            program="inference.py",
            port=port,
            workers=args.workers,
            python=str(runtime.python if runtime else sys.executable),
            env=dict(runtime.env) if runtime else {},
        )
        (work / f"{stack}.json").write_text(config.to_json())
        argv = [
            sys.executable,
            "-m",
            "fedsage.serving.supervisor",
            "--config",
            str(work / f"{stack}.json"),
        ]
        with process(argv, log):
            yield "default"
        return
    if stack.startswith("floor"):
        code = FLOOR_HTTP_SERVER if stack == "floor-http.server" else FLOOR_ASYNCIO
        (work / f"{stack}.py").write_text(code)
        with process([sys.executable, str(work / f"{stack}.py"), str(port)], log):
            yield "default"
        return
    if stack.startswith(("flask-gunicorn", "kyma-nginx")):
        if runtime is not None:  # the image's own Flask/gunicorn/gevent inside the runtime
            python: Path | None = runtime.python
            env.update(runtime.env)
        else:
            python = ensure_venv(
                args.bench_dir,
                "flask",
                ["flask", "gunicorn", "gevent", "packaging", "numpy", sk, "joblib"],
            )
        if python is None:
            notes.append(f"{stack}: no venv")
            yield None
            return
        (work / "flaskapp.py").write_text(FLASK_APP)
        gunicorn = [
            str(python.parent / "gunicorn"),
            "-k",
            "gevent",
            "-w",
            w,
            "--worker-connections",
            str(1000 * args.workers),
            "--timeout",
            "60",
            "--chdir",
            str(work),
        ]
        if stack == "flask-gunicorn":
            with process([*gunicorn, "-b", f"127.0.0.1:{port}", "flaskapp:app"], log, env):
                yield "default"
            return
        if shutil.which("nginx") is None:
            notes.append("kyma-nginx: nginx is missing (apt-get install nginx)")
            yield None
            return
        (work / "nginx.conf").write_text(NGINX_CONF.format(tmp=work, port=port))
        sock = ["-b", f"unix:{work}/gunicorn.sock", "flaskapp:app"]
        with (
            process([*gunicorn, *sock], log, env),
            process(["nginx", "-c", str(work / "nginx.conf"), "-g", "daemon off;"], log),
        ):
            yield "default"
        return
    if stack == "mlflow":
        python = ensure_venv(args.bench_dir, "mlflow", ["mlflow", sk])
        if python is None:
            notes.append("mlflow: cannot install mlflow into its bench venv")
            yield None
            return
        mlflow_model = work / "mlflow-model"
        save = (
            "import joblib, mlflow.sklearn, sys; "
            "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])"
        )
        subprocess.run(
            [str(python), "-c", save, str(model_dir / "model.joblib"), str(mlflow_model)],
            check=True,
            capture_output=True,
        )
        argv = [
            str(python.parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(mlflow_model),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            w,
        ]
        menv = {**env, "MLFLOW_TRACKING_URI": f"file://{work}/mlruns"}
        menv["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
        with process(argv, log, menv):
            yield "mlflow"
        return
    raise ValueError(stack)


def measure_deploy(
    model_dir: Path, work: Path, n: int, runtime: Runtime, workers: int
) -> list[float]:
    """Seconds from ``create_endpoint`` to a healthy endpoint, ``n`` times."""
    tar = work / f"model-{runtime.framework_version}.tar.gz"
    subprocess.run(["tar", "czf", str(tar), "-C", str(model_dir), "."], check=True)
    old = os.environ.get("FEDSAGE_HOME")
    os.environ["FEDSAGE_HOME"] = str(work / "home")
    times = []
    try:
        for i in range(n):
            start = time.perf_counter()
            create_endpoint(
                f"bench-{i}",
                model_tar=tar,
                code_tar=None,
                program="inference.py",
                runtime=runtime,
                workers=workers,
            )
            times.append(time.perf_counter() - start)
            delete_endpoint(f"bench-{i}")
    finally:
        if old is None:
            os.environ.pop("FEDSAGE_HOME", None)
        else:
            os.environ["FEDSAGE_HOME"] = old
    return times


def print_table(results: dict, stacks: list[str], payloads: list[str], conns: list[int]) -> None:
    print("\n| stack | payload | conns | req/s | p50 ms | p99 ms | non-2xx |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for stack in stacks:
        for name in payloads:
            for c in conns:
                r = results.get((stack, name, c))
                if r:
                    print(
                        f"| {stack} | {name} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | "
                        f"{r['p99']:.2f} | {int(r['non2xx'])} |"
                    )


def print_targets(results: dict, version: str | None) -> None:
    """Check the issues' targets at one-row CSV, 8 connections, like for like.

    Each fedsage row is compared with the stacks running the same scikit-learn (and
    so the same ``predict`` cost): ``fedsage-RT`` with ``*-RT``, ``fedsage`` (host
    runtime) with the stacks in the host's scikit-learn.  MLflow and the floors run
    on the host only.
    """
    rt = results.get((f"fedsage-{version}", "csv-1", 8))
    if rt:
        print(f"\ntargets of the {version} runtime at one-row CSV, 8 connections (issue 9):")
        for other in ("kyma-nginx", f"kyma-nginx-{version}"):
            them = results.get((other, "csv-1", 8))
            if them:
                ratio = rt["rps"] / them["rps"]
                print(
                    f"- req/s >= 2x {other}: {ratio:.2f}x -> {'met' if ratio >= 2 else 'NOT met'}"
                )
        print(f"- req/s >= 4,800: {rt['rps']:.0f} -> {'met' if rt['rps'] >= 4800 else 'NOT met'}")
        print(f"- p99 <= 3 ms: {rt['p99']:.2f} ms -> {'met' if rt['p99'] <= 3 else 'NOT met'}")
    rows = [("fedsage", "", "host")]
    if version:
        rows.insert(0, (f"fedsage-{version}", f"-{version}", version))
    for me_name, suffix, label in rows:
        me = results.get((me_name, "csv-1", 8))
        if not me:
            continue
        print(f"\ntargets of issue 4 on the {label} runtime at one-row CSV, 8 connections:")
        flask = results.get((f"flask-gunicorn{suffix}", "csv-1", 8))
        if flask:
            ratio = me["rps"] / flask["rps"]
            print(f"- req/s >= 3x flask-gunicorn{suffix}: {ratio:.2f}x -> "
                  f"{'met' if ratio >= 3 else 'NOT met'}")
            ratio = me["p99"] / flask["p99"]
            print(f"- p99 <= 1/3 of flask-gunicorn{suffix}: {ratio:.2f} -> "
                  f"{'met' if ratio <= 1 / 3 else 'NOT met'}")
        # floor-asyncio is a reference (a Python server's ceiling here), not a target.
        for other, need, what in (
            ("mlflow", 1.5, "req/s >= 1.5x"),
            ("floor-http.server", 0.6, "req/s >= 60% of"),
        ):
            them = results.get((other, "csv-1", 8))
            if them:
                ratio = me["rps"] / them["rps"]
                print(f"- {what} {other} (host): {ratio:.2f}x -> "
                      f"{'met' if ratio >= need else 'NOT met'}")


if __name__ == "__main__":
    main()
