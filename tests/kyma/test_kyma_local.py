"""The local Kyma target: real replicas, a real gateway, real processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from _cli import invoke
from sklearn.linear_model import LogisticRegression

from fedsage.errors import ConfigurationError, DeploymentError, EndpointError
from fedsage.kyma import local
from fedsage.kyma.invoke import invocation_url, invoke_kyma_endpoint
from fedsage.kyma.records import list_records
from fedsage.runtimes import host_runtime

ENTRY = b"""
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
ROWS = np.array([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny real model, its entry script, model.tar.gz and sourcedir.tar.gz."""
    x = np.vstack([np.zeros((20, 4)), np.full((20, 4), 5.0)])
    x += np.random.default_rng(0).normal(0, 0.3, x.shape)
    model = LogisticRegression().fit(x, [0] * 20 + [1] * 20)
    joblib.dump(model, tmp_path / "model.joblib")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.joblib", arcname="model.joblib")
    with tarfile.open(tmp_path / "sourcedir.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("serve.py")
        info.size = len(ENTRY)
        tar.addfile(info, io.BytesIO(ENTRY))
    return tmp_path / "model.tar.gz", tmp_path / "sourcedir.tar.gz"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def deployment(trained, home):
    """Two replicas behind a gateway; deleted (and checked) afterwards."""
    model_tar, code_tar = trained
    events: list[tuple[str, dict]] = []
    url = local.deploy(
        name="churn-local",
        model_tar=model_tar,
        code_tar=code_tar,
        program="serve.py",
        runtime=host_runtime(),
        replicas=2,
        workers=1,
        idle_timeout=1.0,
        progress=lambda e, i: events.append((e, i)),
    )
    assert [e for e, _ in events] == ["replica", "replica", "gateway"]
    try:
        yield url
    finally:
        with contextlib.suppress(DeploymentError):  # already deleted by the test
            local.delete("churn-local")


def _pids(name: str) -> list[int]:
    state = local.describe(name).local
    pids = [state.gateway.pid] + [r.process.pid for r in state.replicas]
    for replica in state.replicas:
        state_file = Path(home_dir(), "endpoints", replica.endpoint, "state.json")
        if state_file.exists():
            pids += json.loads(state_file.read_text()).get("workers", [])
    return pids


def home_dir() -> str:
    return os.environ["FEDSAGE_HOME"]


def test_invoke_each_content_type(deployment, tmp_path):
    url = deployment
    assert url.startswith("http://127.0.0.1:")
    csv = "0,0,0,0\n5,5,5,5"
    npy = io.BytesIO()
    np.save(npy, ROWS)
    (tmp_path / "rows.csv").write_text(csv)
    (tmp_path / "rows.json").write_text(json.dumps(ROWS.tolist()))
    (tmp_path / "rows.npy").write_bytes(npy.getvalue())
    calls = [
        ("text/csv", {"payload": csv}),
        ("text/csv", {"payload_path": str(tmp_path / "rows.csv")}),
        ("application/json", {"payload": json.dumps(ROWS.tolist())}),
        ("application/json", {"payload_path": tmp_path / "rows.json"}),
        ("application/x-npy", {"payload": npy.getvalue()}),
        ("application/x-npy", {"payload_path": tmp_path / "rows.npy"}),
    ]
    for api in (url, url + "/invocations"):
        for content_type, kwargs in calls:
            answer = invoke_kyma_endpoint(api, content_type, **kwargs)
            assert answer.status_code == 200, (content_type, answer.text)
            assert answer.json() == [0, 1], (content_type, kwargs)
    answer = invoke_kyma_endpoint(url, "text/csv", payload=csv, accept="text/csv")
    assert answer.status_code == 200 and answer.content.split() == [b"0", b"1"]
    bad = invoke_kyma_endpoint(url, "text/csv", payload="not,numbers")
    assert 400 <= bad.status_code < 600 and bad.status_code != 503
    assert httpx.get(url + "/ping").status_code == 200
    assert httpx.get(url + "/other").status_code == 404
    record = local.describe("churn-local")
    assert record.target == "local" and record.status == "InService"
    assert record.replicas == 2 and record.url == url
    ports = {r.port for r in record.local.replicas}
    assert len(ports) == 2 and url.rsplit(":", 1)[1] not in {str(p) for p in ports}
    for port in ports:  # each replica is its own model server
        assert httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200


def test_invoke_argument_errors(tmp_path):
    deployment = "http://127.0.0.1:9"  # every error is raised before a request is sent
    with pytest.raises(ConfigurationError, match="exactly one"):
        invoke_kyma_endpoint(deployment, "text/csv")
    with pytest.raises(ConfigurationError, match="exactly one"):
        invoke_kyma_endpoint(deployment, "text/csv", payload_path="x", payload="1")
    with pytest.raises(ConfigurationError, match="not supported"):
        invoke_kyma_endpoint(deployment, "text/plain", payload="1")
    with pytest.raises(ConfigurationError, match="cannot read"):
        invoke_kyma_endpoint(deployment, "text/csv", payload_path=tmp_path / "missing.csv")
    with pytest.raises(ConfigurationError, match="not a URL"):
        invoke_kyma_endpoint("churn-local", "text/csv", payload="1")
    assert invocation_url("https://m.example.com") == "https://m.example.com/invocations"
    assert invocation_url("https://m.example.com/invocations") == (
        "https://m.example.com/invocations"
    )


def test_silent_and_half_open_clients_are_dropped(deployment):
    """A client that connects and sends nothing, or stops in the middle of a request
    head or body, must not hold a connection (and a coroutine) for ever."""
    port = int(deployment.rsplit(":", 1)[1])
    partial = [
        b"",  # connects, says nothing
        b"POST /invocations HTTP/1.1\r\nHost: 12",  # stops in the head
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n5,5",
    ]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in partial]
    try:
        for sock, sent in zip(clients, partial, strict=True):
            sock.sendall(sent)
        for sock in clients:
            # An upper bound on the wait, not a speed check: the gateway drops silent
            # connections after idle_timeout=1 s; without that, recv would block for ever.
            sock.settimeout(60)
            assert sock.recv(1024) == b"", "the gateway answered instead of dropping"
    finally:
        for sock in clients:
            sock.close()
    assert httpx.get(deployment + "/ping").status_code == 200  # still serving


def test_requests_for_other_hosts_are_refused(deployment):
    """DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1
    sends ``Host: attacker.example``; the gateway must not forward it to the model."""
    port = deployment.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", "localhost.attacker.example"):
        answer = httpx.post(
            deployment + "/invocations",
            content=b"5,5,5,5",
            headers={"Host": host, "Content-Type": "text/csv"},
        )
        assert answer.status_code == 400, (host, answer.text)
        body = answer.json()
        assert body["error"] == "GatewayError" and host in body["message"]
        assert "DNS rebinding" in body["message"]
    for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
        answer = httpx.get(deployment + "/ping", headers={"Host": host})
        assert answer.status_code == 200, (host, answer.text)


def test_dead_replica_is_restarted_and_requests_still_answered(deployment):
    url = deployment
    before = local.describe("churn-local").local.replicas
    victim = before[0]
    os.kill(victim.process.pid, signal.SIGKILL)
    answered = 0
    deadline = time.monotonic() + 20
    restarted = None
    while time.monotonic() < deadline:
        answer = invoke_kyma_endpoint(url, "text/csv", payload="5,5,5,5")
        assert answer.status_code == 200, answer.text
        answered += 1
        now = local.describe("churn-local").local.replicas[0]
        if now.process.pid != victim.process.pid and now.restarts == 1:
            restarted = now
            break
    assert restarted is not None, "the killed replica was not restarted"
    assert answered >= 1
    assert _gone(victim.process.pid)
    assert local.describe("churn-local").status == "InService"
    # the restarted replica takes traffic again
    for _ in range(6):
        assert invoke_kyma_endpoint(url, "text/csv", payload="0,0,0,0").json() == [0]
    assert httpx.get(f"http://127.0.0.1:{restarted.port}/ping").status_code == 200


def test_delete_leaves_no_process(deployment):
    pids = _pids("churn-local")
    assert len(pids) >= 5 and not any(_gone(p) for p in pids)
    listed = invoke(["kyma", "list"])
    assert listed.exit_code == 0 and "churn-local" in listed.output and "local" in listed.output
    described = invoke(["kyma", "describe", "churn-local"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.output)["status"] == "InService"
    deleted = invoke(["kyma", "delete", "churn-local"])
    assert deleted.exit_code == 0, deleted.output
    assert "deleted gateway pid" in deleted.output
    _wait(lambda: all(_gone(p) for p in pids), 10, "every process to stop")
    assert list_records() == []
    assert not Path(home_dir(), "kyma", "churn-local").exists()
    assert not any(Path(home_dir(), "endpoints").glob("churn-local*"))
    with pytest.raises(DeploymentError):
        local.delete("churn-local")


def test_name_taken_and_bad_arguments(trained, home):
    model_tar, code_tar = trained
    with pytest.raises(ConfigurationError):
        local.deploy(
            name="Not_Valid",
            model_tar=model_tar,
            code_tar=code_tar,
            program="serve.py",
            runtime=host_runtime(),
            replicas=1,
        )
    with pytest.raises(ConfigurationError):
        local.deploy(
            name="ok",
            model_tar=model_tar,
            code_tar=code_tar,
            program="serve.py",
            runtime=host_runtime(),
            replicas=0,
        )
    with pytest.raises(DeploymentError):  # a model server that cannot start
        local.deploy(
            name="broken",
            model_tar=model_tar,
            code_tar=code_tar,
            program="missing.py",
            runtime=host_runtime(),
            replicas=1,
        )
    assert list_records() == []
    with pytest.raises(EndpointError):
        invoke_kyma_endpoint("http://127.0.0.1:1/invocations", "text/csv", payload="1")


def test_a_deployment_failing_after_its_gateway_started_leaves_nothing_running(
    trained, home, monkeypatch
):
    """The last step (the record) fails: the gateway and replicas already run and must
    be stopped, not left behind."""
    from fedsage.kyma.local import deployment

    def registry_down(record):
        raise RuntimeError("the registry is not writable")

    monkeypatch.setattr(deployment, "update_record", registry_down)
    model_tar, code_tar = trained
    events: list[tuple[str, dict]] = []
    with pytest.raises(RuntimeError, match="not writable"):
        local.deploy(
            name="churn-broken",
            model_tar=model_tar,
            code_tar=code_tar,
            program="serve.py",
            runtime=host_runtime(),
            replicas=1,
            workers=1,
            progress=lambda e, i: events.append((e, i)),
        )
    started = [i["pid"] for e, i in events if e == "gateway"]
    started += [i["process"]["pid"] for e, i in events if e == "replica"]
    assert len(started) == 2
    _wait(lambda: all(_gone(p) for p in started), 30, "the started processes to stop")
    assert list_records() == []
    assert not Path(home_dir(), "kyma", "churn-broken").exists()


WITHOUT_YAML = """
import sys
sys.modules["yaml"] = None  # as if PyYAML (it comes with fedsage[kyma]) were not installed
from pathlib import Path
from fedsage.errors import MissingExtraError
from fedsage.kyma import cluster, local
from fedsage.runtimes import host_runtime

model_tar, code_tar = Path(sys.argv[1]), Path(sys.argv[2])
try:
    cluster.deploy(
        name="churn-cluster", model_tar=model_tar, code_tar=code_tar, program="serve.py",
        framework_version="1.2-1",
    )
except MissingExtraError as exc:
    print("cluster:", exc)
url = local.deploy(
    name="churn-noyaml", model_tar=model_tar, code_tar=code_tar, program="serve.py",
    runtime=host_runtime(), replicas=1, workers=1,
)
print("local:", url)
print("stopped:", local.delete("churn-noyaml"))
"""


def test_the_local_target_needs_no_yaml(trained, home, monkeypatch):
    """PyYAML comes only with the kyma extra: a local deployment must work without it,
    and a cluster one must say which extra to install (not a bare ModuleNotFoundError)."""
    monkeypatch.setenv("FEDSAGE_KYMA_ALLOW_UNAUTHENTICATED", "1")
    model_tar, code_tar = trained
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_YAML, str(model_tar), str(code_tar)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert "pip install 'fedsage[kyma]'" in lines["cluster"]
    assert lines["local"].startswith("http://127.0.0.1:")
    assert "gateway pid" in lines["stopped"]
    assert list_records() == []
