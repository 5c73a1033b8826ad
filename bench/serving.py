"""Serving benchmark: fedsage's model server against the stacks people use today.

Run:  .venv/bin/python bench/serving.py [--duration 5] [--only fedsage,kserve,...]
                                        [--payloads csv-1000,...] [--connections 8,64]
      .venv/bin/python bench/serving.py --only memory     # the memory table alone, ~1 min

Load generator: ``wrk`` (Debian package) with ``--latency``.  Every stack serves the same
model, scikit-learn's iris ``LogisticRegression`` (4 features, 3 classes), on 127.0.0.1
with 2 worker processes, and gets the same rows: one row, 1,000 rows (16 KB of CSV),
10,000 rows (160 KB), as CSV or JSON in the SageMaker protocol; MLServer and KServe do not
speak it, so they get the same rows in their own JSON protocol (``/v2/models/iris/infer``
tensors, ``/v1/models/iris:predict`` instances).

- ``fedsage``: ``fedsage.serving.supervisor`` on the host runtime (scikit-learn of
  fedsage's environment), zygote from the runtime's warm parent, as an endpoint gets it;
- ``fedsage-0.23-1``: the same on the default runtime ``0.23-1`` (Python 3.7,
  scikit-learn 0.23.2; the model trained under it), built by
  ``fedsage.runtimes.resolve_runtime`` on first use;
- ``kyma-nginx`` / ``kyma-nginx-0.23-1``: fedml-aws's Kyma image stack, nginx ->
  gunicorn/gevent (unix socket) -> Flask with the image's default handlers, on the host's
  scikit-learn / inside the 0.23-1 runtime with the image's own Flask 1.1.1, gunicorn
  20.0.4 and gevent (the like-for-like reference for ``fedsage-0.23-1``);
- ``flask-gunicorn`` / ``flask-gunicorn-0.23-1``: the same without nginx (SageMaker's
  scikit-learn serving stack);
- ``mlserver``: MLServer 1.7 with mlserver-sklearn, its default settings (one inference
  worker process beside the HTTP process), V2 JSON;
- ``kserve``: KServe 0.21's ``ModelServer`` with 2 workers and the model class of KServe's
  sklearnserver (which is not published on PyPI; the same 15 lines here), V1 JSON;
- ``mlflow``: ``mlflow models serve`` of the same model (``--env-manager local``);
- ``floor-http.server`` / ``floor-asyncio``: servers returning a constant (references).

Beside the HTTP stacks: ``bound-RT`` rows, the in-process cost of the same work without
HTTP (decode + predict + encode in two processes at once, i.e. both cores): with the
SageMaker image's codecs (``csv.reader`` / ``json.loads`` -> ``np.array`` -> float32 ->
``predict`` -> ``json.dumps``, the issue's "model-cost bound") and with fedsage's own
(``Service.invoke``); cold start (``create_endpoint`` and ``fedsage serve`` to the first
``/ping`` 200: the first of a runtime, which starts its warm parent, and later ones); and
idle memory after the load (PSS of each stack's process tree, warm parent included,
once the tree is idle: :func:`wait_idle`); and a table of fedsage's idle memory per
process (supervisor, warm parent, zygote, workers; PSS and Private_Dirty from
``/proc/PID/smaps_rollup``) without a warm parent, with the first warm parent of a fresh
``FEDSAGE_HOME`` and with a later one, on both runtimes (``--only memory`` prints just it).

Flask, gunicorn, mlflow, MLServer and KServe live in separate virtualenvs under
``--bench-dir`` (created with uv on first use), never in fedsage's own dependencies.
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
import numpy as np
import sklearn
from sklearn.datasets import load_iris

from fedsage.runtimes import resolve_runtime
from fedsage.runtimes.base import Runtime, host_runtime
from fedsage.serving import create_endpoint, delete_endpoint
from fedsage.serving.supervisor import WORKER_PATH, ServerConfig
from fedsage.serving.warm import with_address

INFERENCE = (
    "import os, joblib\n\ndef model_fn(model_dir):\n"
    "    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n"
)
TRAIN = """
import sys
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), sys.argv[1])
"""
# In-process cost of one request, in a runtime's interpreter: argv = model, body, content
# type, seconds, "image" or "fedsage", worker folder; prints the number of requests done.
BOUND = """
import csv, io, json, sys, time
import joblib, numpy as np
model_path, body_path, content_type, seconds, codecs, worker = sys.argv[1:7]
model = joblib.load(model_path)
body = open(body_path, "rb").read()

def image(body):  # sagemaker_containers' decoders and the image's default handlers
    text = body.decode("utf-8")
    if content_type == "text/csv":
        rows = list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"',
                               doublequote=True, strict=True))
        data = np.array(rows).squeeze().astype(None)
    else:
        data = np.array(json.loads(text))
    data = data.astype(np.float32)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    return json.dumps(model.predict(data), default=lambda x: x.tolist()).encode()

if codecs == "fedsage":
    sys.path.insert(0, worker)
    from fedsage_worker.service import Service
    service = Service("/", None)
    service.model, service.loaded = model, True
    def run(body):
        answer = service.invoke(body, content_type, "application/json")
        assert answer.status_code == 200, answer.get_data()
        return answer.get_data()
else:
    run = image
run(body)
done, end = 0, time.perf_counter() + float(seconds)
while time.perf_counter() < end:
    run(body)
    done += 1
print(done)
"""
KSERVE_APP = """
import argparse, os
import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response

parser = argparse.ArgumentParser(parents=[model_server.parser])
parser.add_argument("--model_dir", required=True)
args, _ = parser.parse_known_args()


class SKLearnModel(Model):  # what KServe's sklearnserver runs: load, predict, respond
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir

    def load(self):
        self._model = joblib.load(os.path.join(self.model_dir, "model.joblib"))
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        result = self._model.predict(get_predict_input(payload))
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":  # its workers are spawned processes that import this file
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False).start([model])
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
def process(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[int]:
    """Start a server in its own session; stop exactly that process group afterwards."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=cwd
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
        # Compiled bytecode, as pip leaves it: without it every process (KServe's spawned
        # workers, which must answer their parent within 5 s) compiles its imports again.
        subprocess.run(
            [*uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python),
             *packages],
            check=True,
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
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "requests": done,
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


# Each kind of stack: the path requests go to, its health check, how it wants the rows.
PATHS = {
    "default": ("/invocations", "/ping"),
    "mlflow": ("/invocations", "/health"),
    "v2": ("/v2/models/iris/infer", "/v2/health/ready"),
    "v1": ("/v1/models/iris:predict", "/v1/models/iris"),
}


def payloads_for(rows: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[bytes, str]]]:
    """``{kind: {payload: (body, content type)}}``: the same rows in each stack's format."""
    out: dict[str, dict[str, tuple[bytes, str]]] = {k: {} for k in PATHS}
    for name, data in rows.items():
        fmt, _ = name.split("-")
        as_list = data.tolist()
        if fmt == "csv":
            out["default"][name] = (
                "\n".join(",".join(repr(v) for v in r) for r in as_list).encode(),
                "text/csv",
            )
            out["mlflow"][name] = (b"0,1,2,3\n" + out["default"][name][0], "text/csv")
        else:
            out["default"][name] = (json.dumps(as_list).encode(), "application/json")
            out["mlflow"][name] = (json.dumps({"inputs": as_list}).encode(), "application/json")
        tensor = {"name": "input-0", "shape": list(data.shape), "datatype": "FP64",
                  "data": data.ravel().tolist()}
        out["v2"][name] = (json.dumps({"inputs": [tensor]}).encode(), "application/json")
        out["v1"][name] = (json.dumps({"instances": as_list}).encode(), "application/json")
    return out


def tree_cpu(roots: tuple[int, ...]) -> float:
    """CPU seconds (user + system) used so far by the processes under ``roots``."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(roots)
    while todo:
        pid = todo.pop()
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            fields = raw[raw.rfind(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_pss(root: int) -> float:
    """PSS in MiB of ``root`` and every process below it (``/proc/PID/smaps_rollup``)."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def smaps_rollup(pid: int) -> dict[str, float]:
    """``/proc/PID/smaps_rollup`` in MiB (``Pss``, ``Private_Dirty``, ``Pss_File`` ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) / 1024
    return out


def tree_processes(root: int) -> list[tuple[int, int]]:
    """``(pid, depth)`` of ``root`` and every process below it, parents first."""
    out, todo = [], [(root, 0)]
    while todo:
        pid, depth = todo.pop(0)
        try:
            kids = [
                int(c)
                for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except OSError:
            continue
        out.append((pid, depth))
        todo += [(kid, depth + 1) for kid in sorted(kids)]
    return out


def wait_idle(roots: tuple[int, ...], quiet: float = 0.01, timeout: float = 15.0) -> float:
    """Wait until the tree used under ``quiet`` CPU seconds in one second; return the wait.

    Right after a load the workers still hold the bodies of the requests queued on their
    connections (64 x 160 KB at csv-10000 c=64) for a few seconds: that is not idle.
    """
    start = time.monotonic()
    used = tree_cpu(roots)
    while time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = tree_cpu(roots)
        if now - used < quiet:
            break
        used = now
    return time.monotonic() - start


MEMORY_ROLES = {
    True: ("supervisor", "warm parent", "zygote", "worker"),
    False: ("supervisor", "zygote", "worker"),
}


def measure_memory(
    args: argparse.Namespace,
    targets: list[tuple[str, Runtime | None, Path]],
    work: Path,
    scripts: dict[str, Path],
) -> list[tuple[str, str, list[tuple[str, dict[str, float]]]]]:
    """Idle memory per process of one fedsage endpoint tree, after a short load.

    For each runtime: without a warm parent (``warm=False``: the zygote is a fresh
    interpreter), with the first warm parent of a fresh ``FEDSAGE_HOME`` (it learns the
    modules the model needs from this endpoint) and with a later one (it imports them
    at start).  Load: one-row and 1,000-row CSV with wrk, 8 connections,
    ``--memory-seconds`` each; then :func:`wait_idle` and ``smaps_rollup`` per process.
    """
    out = []
    for label, runtime, mdir in targets:
        home = work / f"memory-home-{label}"
        for case, warm in (("no warm parent", False), ("warm parent, first", True),
                           ("warm parent, later", True)):
            os.environ["FEDSAGE_HOME"] = str(home)
            port = free_port()
            config = ServerConfig(
                model_dir=str(mdir), code_dir=str(mdir), program="inference.py", port=port,
                workers=args.workers,
                python=str(runtime.python if runtime else sys.executable),
                env=dict(runtime.env) if runtime else dict(host_runtime().env),
                warm=warm, runtime=label,
            )
            cfg = work / f"memory-{label}.json"
            cfg.write_text(with_address(config).to_json())  # as create_endpoint writes it
            argv = [sys.executable, "-m", "fedsage.serving.supervisor", "--config", str(cfg)]
            url = f"http://127.0.0.1:{port}"
            with process(argv, work / f"memory-{label}.log") as pid:
                wait_ping(url + "/ping")
                for name in ("csv-1", "csv-1000"):
                    if name in scripts:
                        run_wrk(url + "/invocations", scripts[name], 8, args.memory_seconds)
                wait_idle((pid,))
                roles = MEMORY_ROLES[warm]
                rows = []
                for proc, depth in tree_processes(pid):
                    with contextlib.suppress(OSError):
                        rows.append((roles[min(depth, len(roles) - 1)], smaps_rollup(proc)))
            out.append((label, case, rows))
            total = sum(r["Pss"] for _, r in rows)
            print(f"# memory {label:8} {case:20} PSS {total:6.1f} MiB", file=sys.stderr)
            time.sleep(1.0)  # its warm parent stops with it
    return out


def print_memory(results: list[tuple[str, str, list[tuple[str, dict[str, float]]]]]) -> None:
    """The per-process idle memory table (MiB)."""
    print("\n| runtime | case | process | PSS | Private_Dirty | PSS of files |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for label, case, rows in results:
        for role, r in rows:
            print(f"| {label} | {case} | {role} | {r['Pss']:.1f} | {r['Private_Dirty']:.1f} "
                  f"| {r.get('Pss_File', 0.0):.1f} |")
        total = sum(r["Pss"] for _, r in rows)
        dirty = sum(r["Private_Dirty"] for _, r in rows)
        print(f"| {label} | {case} | **tree** | **{total:.1f}** | {dirty:.1f} | "
              f"{sum(r.get('Pss_File', 0.0) for _, r in rows):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--bench-dir", type=Path, default=Path(tempfile.gettempdir()) / "fedsage-bench"
    )
    parser.add_argument(
        "--only", default="", help="comma list of stacks; 'memory' alone: only the memory table"
    )
    parser.add_argument("--memory-seconds", type=int, default=2,
                        help="seconds of load per payload before the memory table")
    parser.add_argument(
        "--payloads", default="", help="comma list of csv-1,json-1,csv-1000,json-1000,csv-10000"
    )
    parser.add_argument("--deploys", type=int, default=3, help="deploys per runtime (warm)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median kept)")
    parser.add_argument("--bound-seconds", type=float, default=3.0,
                        help="seconds per in-process bound cell (0 skips them)")
    parser.add_argument(
        "--runtime", default="0.23-1", help="framework runtime of the fedsage-RT rows ('' skips)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    args.bench_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fedsage-bench-"))
    from fedsage.runtimes.build import runtimes_root

    # A home of its own (no warm parent of another run), the runtimes of the usual one.
    os.environ.setdefault("FEDSAGE_RUNTIMES_DIR", str(runtimes_root()))
    os.environ["FEDSAGE_HOME"] = str(work / "home")
    model_dir = work / "model"
    model_dir.mkdir()
    subprocess.run([sys.executable, "-c", TRAIN, str(model_dir / "model.joblib")], check=True)
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
    iris = load_iris().data
    rows = {
        f"{fmt}-{n}": np.tile(iris, (n // len(iris) + 1, 1))[:n]
        for fmt, n in (("csv", 1), ("json", 1), ("csv", 1000), ("json", 1000), ("csv", 10000))
    }
    if args.payloads:
        rows = {k: v for k, v in rows.items() if k in args.payloads.split(",")}
    bodies = payloads_for(rows)
    scripts: dict[str, dict[str, Path]] = {kind: {} for kind in bodies}
    for kind, table in bodies.items():
        for name, (body, ctype) in table.items():
            (work / f"{kind}-{name}.body").write_bytes(body)
            scripts[kind][name] = lua_script(
                work / f"{kind}-{name}.lua", work / f"{kind}-{name}.body", ctype,
                "application/json",
            )
    conns = [int(c) for c in args.connections.split(",")]
    rt_name = runtime.framework_version if runtime else None
    stacks = [
        "fedsage",
        *([f"fedsage-{rt_name}"] if runtime else []),
        "kyma-nginx",
        *([f"kyma-nginx-{rt_name}"] if runtime else []),
        "flask-gunicorn",
        *([f"flask-gunicorn-{rt_name}"] if runtime else []),
        "mlserver",
        "kserve",
        "mlflow",
        "floor-http.server",
        "floor-asyncio",
    ]
    if args.only:
        stacks = [s for s in stacks if s in args.only.split(",")]
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    memory: dict[str, float] = {}
    load_before = os.getloadavg()
    sk = f"scikit-learn=={sklearn.__version__}"
    for stack in stacks:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / f"{stack}.log"
        try:
            rt = runtime if runtime and stack.endswith(runtime.framework_version) else None
            mdir = rt_dir if rt else model_dir
            with start_stack(stack, port, args, mdir, work, log, sk, notes, rt) as ready:
                if ready is None:
                    continue
                kind, root = ready
                path, health = PATHS[kind]
                wait_ping(url + health)
                # warm-up: every worker loaded its model (gunicorn/mlflow load lazily too)
                warm = next(iter(scripts[kind]))
                run_wrk(url + path, scripts[kind][warm], 8, max(3, args.duration))
                for name in scripts[kind]:
                    for c in conns:
                        runs = []
                        for _ in range(args.repeat):
                            cpu = tree_cpu(root)
                            runs.append(run_wrk(url + path, scripts[kind][name], c, args.duration))
                            # the servers' own CPU per request: what load from others
                            # does not change (unlike req/s on shared cores)
                            runs[-1]["cpu_ms"] = (
                                1e3 * (tree_cpu(root) - cpu) / max(runs[-1]["requests"], 1)
                            )
                        results[(stack, name, c)] = {
                            k: statistics.median(r[k] for r in runs) for k in runs[0]
                        }
                        r = results[(stack, name, c)]
                        print(
                            f"# {stack:22} {name:10} c={c:<3} {r['rps']:9.0f} req/s "
                            f"p50 {r['p50']:7.2f} ms p99 {r['p99']:7.2f} ms "
                            f"server CPU {r['cpu_ms']:.3f} ms/req",
                            file=sys.stderr,
                        )
                wait_idle(root)
                memory[stack] = sum(tree_pss(pid) for pid in root)
                print(f"# {stack:22} idle PSS {memory[stack]:.0f} MiB", file=sys.stderr)
        except Exception as exc:  # one stack failing must not hide the others
            notes.append(f"{stack}: failed ({exc}); log {log}")
    bounds: dict[tuple[str, str], float] = {}
    targets = [("host", Path(sys.executable), model_dir)]
    if runtime is not None:
        targets.append((runtime.framework_version, runtime.python, rt_dir))
    memory_rows = []
    if not args.only or "memory" in args.only.split(","):
        memory_rows = measure_memory(
            args,
            [(label, None if label == "host" else runtime, mdir) for label, _, mdir in targets],
            work,
            scripts["default"],
        )
        os.environ["FEDSAGE_HOME"] = str(work / "home")
    if args.only == "memory":
        print(f"\nidle memory per process, {args.workers} workers, after wrk -c 8 "
              f"{args.memory_seconds}s of csv-1 and of csv-1000; load average "
              f"{os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
        print_memory(memory_rows)
        shutil.rmtree(work, ignore_errors=True)
        return
    if args.bound_seconds > 0:
        for label, python, mdir in targets:
            for codecs in ("image", "fedsage"):
                for name in scripts["default"]:
                    bounds[(f"bound-{label} ({codecs} codecs)", name)] = run_bound(
                        python, mdir, work / f"default-{name}.body",
                        bodies["default"][name][1], args.bound_seconds, codecs,
                    )
                    print(f"# bound {label} {codecs:8} {name:10} "
                          f"{bounds[(f'bound-{label} ({codecs} codecs)', name)]:9.0f} req/s",
                          file=sys.stderr)
    starts = {}
    for label, _python, mdir in targets:
        rt_obj = host_runtime() if label == "host" else runtime
        assert rt_obj is not None
        starts[label] = measure_starts(mdir, work, args.deploys, rt_obj, args.workers)
        print(f"# cold start {label}: {starts[label]}", file=sys.stderr)
    load_after = os.getloadavg()
    print(
        f"\nwrk -t min(c,2) -c C -d {args.duration}s --latency, {args.workers} workers per stack, "
        f"median of {args.repeat} run(s) per cell; load average before "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f} "
        f"(1/5 min) on {os.cpu_count()} cores"
    )
    print_table(results, stacks, list(rows), conns)
    print_summary(results, bounds, memory, starts, stacks, list(rows))
    print_targets(results, bounds, memory, starts, rt_name)
    if memory_rows:
        print_memory(memory_rows)
    for note in notes:
        print("note:", note)
    shutil.rmtree(work, ignore_errors=True)


def run_bound(python: Path, model_dir: Path, body: Path, content_type: str, seconds: float,
              codecs: str) -> float:
    """Requests per second of decode + predict + encode in two processes at once."""
    argv = [str(python), "-c", BOUND, str(model_dir / "model.joblib"), str(body), content_type,
            str(seconds), codecs, str(WORKER_PATH)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    done = [int(p.communicate()[0].strip()) for p in procs]
    return sum(done) / seconds


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
) -> Iterator[tuple[str, tuple[int, ...]] | None]:
    """Start a stack; yield ``(kind, root PIDs)`` while it runs (None: not available)."""
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
            env=dict(runtime.env) if runtime else dict(host_runtime().env),
            warm=True,
            runtime=runtime.framework_version if runtime else "host",
        )
        (work / f"{stack}.json").write_text(config.to_json())
        argv = [
            sys.executable,
            "-m",
            "fedsage.serving.supervisor",
            "--config",
            str(work / f"{stack}.json"),
        ]
        with process(argv, log) as pid:
            yield "default", (pid,)
        return
    if stack.startswith("floor"):
        code = FLOOR_HTTP_SERVER if stack == "floor-http.server" else FLOOR_ASYNCIO
        (work / f"{stack}.py").write_text(code)
        with process([sys.executable, str(work / f"{stack}.py"), str(port)], log) as pid:
            yield "default", (pid,)
        return
    if stack == "mlserver":
        # uvloop 0.22 and later refuse MLServer 1.7's get_event_loop() in its workers
        python = ensure_venv(args.bench_dir, "mlserver", ["mlserver==1.7.1",
                             "mlserver-sklearn==1.7.1", "uvloop<0.22", sk, "joblib"])
        if python is None:
            notes.append("mlserver: cannot build its venv")
            yield None
            return
        folder = work / "mlserver"
        folder.mkdir(exist_ok=True)
        shutil.copy(model_dir / "model.joblib", folder / "model.joblib")
        (folder / "settings.json").write_text(json.dumps(
            {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}))
        (folder / "model-settings.json").write_text(json.dumps(
            {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
             "parameters": {"uri": "./model.joblib"}}))
        # cwd: MLServer writes its metrics files (.metrics/) into its working folder
        argv = [str(python.parent / "mlserver"), "start", str(folder)]
        with process(argv, log, cwd=folder) as pid:
            yield "v2", (pid,)
        return
    if stack == "kserve":
        python = ensure_venv(args.bench_dir, "kserve",
                             ["kserve==0.21.0", "kserve-storage==0.21.0", sk, "joblib"])
        if python is None:
            notes.append("kserve: cannot build its venv")
            yield None
            return
        (work / "kserve_app.py").write_text(KSERVE_APP)
        argv = [str(python), str(work / "kserve_app.py"), "--model_name", "iris",
                "--model_dir", str(model_dir), "--http_port", str(port), "--workers", w]
        with process(argv, log) as pid:
            yield "v1", (pid,)
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
        if stack.startswith("flask-gunicorn"):
            with process([*gunicorn, "-b", f"127.0.0.1:{port}", "flaskapp:app"], log, env) as pid:
                yield "default", (pid,)
            return
        if shutil.which("nginx") is None:
            notes.append("kyma-nginx: nginx is missing (apt-get install nginx)")
            yield None
            return
        (work / "nginx.conf").write_text(NGINX_CONF.format(tmp=work, port=port))
        sock = ["-b", f"unix:{work}/gunicorn.sock", "flaskapp:app"]
        with (
            process([*gunicorn, *sock], log, env) as gpid,
            process(["nginx", "-c", str(work / "nginx.conf"), "-g", "daemon off;"], log) as npid,
        ):
            yield "default", (gpid, npid)
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
        with process(argv, log, menv) as pid:
            yield "mlflow", (pid,)
        return
    raise ValueError(stack)


def _ping_after_launch(argv: list[str], url: str, log: Path) -> tuple[float, subprocess.Popen]:
    """Seconds from starting ``argv`` to its first ``/ping`` 200; the process keeps running."""
    with open(log, "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    with httpx.Client(timeout=2) as client:
        while time.perf_counter() - start < 120:
            with contextlib.suppress(httpx.TransportError):
                if client.get(url + "/ping").status_code == 200:
                    return time.perf_counter() - start, proc
            if proc.poll() is not None:
                break
            time.sleep(0.005)
    raise RuntimeError(f"{argv[0]} did not answer /ping; see {log}")


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def measure_starts(
    model_dir: Path, work: Path, n: int, runtime: Runtime, workers: int
) -> dict[str, list[float]]:
    """Cold start, to the first ``/ping`` 200, of ``create_endpoint`` and ``fedsage serve``.

    ``first``: no warm parent of this runtime runs (it is started and imports the
    libraries); ``later``: another endpoint (or ``fedsage serve``) of the runtime runs.
    """
    label = runtime.framework_version
    tag = label.replace(".", "-")  # endpoint names: letters, digits, hyphens
    tar = work / f"model-{label}.tar.gz"
    subprocess.run(["tar", "czf", str(tar), "-C", str(model_dir), "."], check=True)
    fedsage = str(Path(sys.executable).parent / "fedsage")
    serve = [fedsage, "serve", str(model_dir), "--workers", str(workers), "--program",
             "inference.py", "--python", str(runtime.python)]
    out: dict[str, list[float]] = {"serve first": [], "serve later": [], "deploy first": [],
                                   "deploy later": []}

    def serve_once() -> tuple[float, subprocess.Popen]:
        port = free_port()
        return _ping_after_launch([*serve, "--port", str(port)], f"http://127.0.0.1:{port}",
                                  work / f"serve-{label}.log")

    took, keeper = serve_once()
    out["serve first"].append(took)
    try:
        for _ in range(n):
            took, proc = serve_once()
            out["serve later"].append(took)
            _stop(proc)
    finally:
        _stop(keeper)
    time.sleep(0.5)  # its warm parent stops with it

    def deploy(name: str) -> float:
        start = time.perf_counter()
        create_endpoint(name, model_tar=tar, code_tar=None, program="inference.py",
                        runtime=runtime, workers=workers)
        return time.perf_counter() - start

    out["deploy first"].append(deploy(f"bench-keep-{tag}"))
    try:
        for i in range(n):
            out["deploy later"].append(deploy(f"bench-{tag}-{i}"))
            delete_endpoint(f"bench-{tag}-{i}")
    finally:
        delete_endpoint(f"bench-keep-{tag}")
    return out


def print_table(results: dict, stacks: list[str], payloads: list[str], conns: list[int]) -> None:
    print("\n| stack | payload | conns | req/s | p50 ms | p99 ms | server CPU ms/req | non-2xx |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for stack in stacks:
        for name in payloads:
            for c in conns:
                r = results.get((stack, name, c))
                if r:
                    print(
                        f"| {stack} | {name} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | "
                        f"{r['p99']:.2f} | {r.get('cpu_ms', float('nan')):.3f} | "
                        f"{int(r['non2xx'])} |"
                    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_summary(results: dict, bounds: dict, memory: dict, starts: dict, stacks: list[str],
                  payloads: list[str]) -> None:
    """The per-stack figures of issue 17 side by side, with the bound rows and start-up."""
    print("\n| figure | " + " | ".join(stacks) + " |")
    print("| --- |" + " ---: |" * len(stacks))
    for name in payloads:
        for c in (8, 64):
            cells = [results.get((s, name, c)) for s in stacks]
            if any(cells):
                print(f"| {name} c={c} req/s | " + " | ".join(
                    f"{r['rps']:,.0f}" if r else "" for r in cells) + " |")
    for name in payloads:
        cells = [results.get((s, name, 8)) for s in stacks]
        if any(cells):
            print(f"| {name} c=8 server CPU ms/req | " + " | ".join(
                f"{r['cpu_ms']:.3f}" if r else "" for r in cells) + " |")
    one = [results.get((s, "csv-1", 8)) for s in stacks]
    if any(one):
        print("| csv-1 c=8 p99 ms | " + " | ".join(
            f"{r['p99']:.2f}" if r else "" for r in one) + " |")
    print("| idle PSS MiB (after the load) | " + " | ".join(
        f"{memory[s]:.0f}" if s in memory else "" for s in stacks) + " |")
    if bounds:
        print("\nin-process bound (decode + predict + encode, 2 processes = both cores), req/s:")
        print("\n| bound | " + " | ".join(payloads) + " |")
        print("| --- |" + " ---: |" * len(payloads))
        for label in sorted({b for b, _ in bounds}):
            print(f"| {label} | " + " | ".join(
                f"{bounds[(label, p)]:,.0f}" if (label, p) in bounds else "" for p in payloads)
                + " |")
    print("\ncold start, seconds to the first /ping 200 (median; all runs):")
    for label, figures in starts.items():
        for what, values in figures.items():
            print(f"- {label} {what}: {_median(values):.2f} s ("
                  + ", ".join(f"{v:.2f}" for v in values) + ")")


def print_targets(results: dict, bounds: dict, memory: dict, starts: dict,
                  version: str | None) -> None:
    """Check issue 17's targets (and issue 9's one-row target) in this run."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("\ntargets of issue 17:")
    kyma = f"kyma-nginx-{version}" if version else "kyma-nginx"
    rows = [("host", "fedsage")] + ([(version, f"fedsage-{version}")] if version else [])
    for label, me in rows:
        for name in ("csv-1000", "json-1000"):
            for c in (8, 64):
                r = results.get((me, name, c))
                if not r:
                    continue
                bound = bounds.get((f"bound-{label} (image codecs)", name))
                if bound:
                    ratio = r["rps"] / bound
                    print(f"- {me} {name} c={c}: {ratio:.0%} of the bound ({r['rps']:,.0f} / "
                          f"{bound:,.0f}) >= 75%: {verdict(ratio >= 0.75)}")
                for other, need in ((kyma, 2.0), ("mlserver", 1.6)):
                    them = results.get((other, name, c))
                    if them:
                        ratio = r["rps"] / them["rps"]
                        cpu = them.get("cpu_ms", float("nan")) / r.get("cpu_ms", float("nan"))
                        print(f"- {me} {name} c={c}: {ratio:.2f}x {other} >= {need}x: "
                              f"{verdict(ratio >= need)} (server CPU per request: "
                              f"{cpu:.2f}x less)")
    for label, limit in (("host", 1.0), (version, 0.8)):
        if label in starts:
            for what in ("deploy later", "serve later"):
                value = _median(starts[label][what])
                print(f"- cold start {label} {what}: {value:.2f} s <= {limit} s: "
                      f"{verdict(value <= limit)}")
    for me, limit in (("fedsage", 150), (f"fedsage-{version}", 110)):
        if me in memory:
            print(f"- idle PSS {me}: {memory[me]:.0f} MiB <= {limit} MiB: "
                  f"{verdict(memory[me] <= limit)}")
    rt = results.get((f"fedsage-{version}", "csv-1", 8))
    them = results.get((kyma, "csv-1", 8))
    if rt and them:
        ratio = rt["rps"] / them["rps"]
        print(f"- fedsage-{version} csv-1 c=8: {ratio:.2f}x {kyma} >= 4x: {verdict(ratio >= 4)}; "
              f"p99 {rt['p99']:.2f} ms <= 3 ms: {verdict(rt['p99'] <= 3)}")


if __name__ == "__main__":
    main()
