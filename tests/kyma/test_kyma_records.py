"""Typed Kyma records: round trips, and records stored by older fedsage versions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _cli import invoke

from fedsage._home import registry
from fedsage._process import ProcessIdentity
from fedsage.errors import DeploymentError
from fedsage.kyma import local
from fedsage.kyma.records import (
    KIND,
    KymaDeployment,
    LocalState,
    ReplicaRecord,
    get_record,
    list_records,
    reserve_record,
)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))


def _old_local_record(name: str, gateway_pid: int, gateway_start: str | None) -> dict:
    """A local record exactly as fedsage wrote it before records were typed."""
    return {
        "name": name,
        "target": "local",
        "status": "InService",
        "namespace": None,
        "image": None,
        "url": "http://127.0.0.1:40001",
        "host": "127.0.0.1:40001",
        "replicas": 1,
        "job_name": "churn-2025-01-01-00-00-00-001",
        "kubeconfig": None,
        "pull_secret": None,
        "manifests": [],
        "replica_endpoints": [f"{name}-r0"],
        "local": {
            "dir": "/nowhere/kyma/" + name,
            "gateway_pid": gateway_pid,
            "gateway_pid_start": gateway_start,
            "log": "/nowhere/gateway.log",
            "replicas": [
                {
                    "endpoint": f"{name}-r0",
                    "host": "127.0.0.1",
                    "port": 40002,
                    "pid": 4194301,
                    "pid_start": "12345",
                    "restarts": 2,
                }
            ],
            "restarts": 2,
            "program": "serve.py",
            "runtime": {"framework_version": "host"},
        },
    }


def test_round_trips():
    replica = ReplicaRecord("churn-r0", "127.0.0.1", 40002, ProcessIdentity(12, "99"), 1)
    deployment = KymaDeployment(
        name="churn",
        target="local",
        status="InService",
        url="http://127.0.0.1:40001",
        replica_endpoints=["churn-r0"],
        local=LocalState(folder="/f", gateway=ProcessIdentity(11, "98"), replicas=[replica]),
    )
    data = json.loads(json.dumps(deployment.to_dict()))  # what the registry stores
    assert data["local"]["gateway"] == {"pid": 11, "start": "98"}
    assert data["local"]["replicas"][0]["process"] == {"pid": 12, "start": "99"}
    assert data["local"]["restarts"] == 1
    assert KymaDeployment.from_dict(data) == deployment
    cluster = KymaDeployment(
        name="churn",
        target="cluster",
        namespace="fedsage",
        image="r/churn@sha256:" + "a" * 64,
        manifests=[{"kind": "Service"}, {"kind": "Secret", "data": {"x": "token"}}],
    )
    stored = cluster.to_dict()
    assert stored["manifests"] == [{"kind": "Service"}]  # a Secret is never stored
    assert KymaDeployment.from_dict(stored).manifests == [{"kind": "Service"}]


def test_an_old_local_record_is_read():
    record = KymaDeployment.from_dict(_old_local_record("churn-old", 4194300, "777"))
    assert record.local is not None
    assert record.local.folder == "/nowhere/kyma/churn-old"
    assert record.local.gateway == ProcessIdentity(4194300, "777")
    (replica,) = record.local.replicas
    assert replica.process == ProcessIdentity(4194301, "12345")
    assert (replica.port, replica.restarts) == (40002, 2)
    assert record.local.restarts == 2


def test_an_old_record_in_the_registry_can_be_listed_described_and_deleted():
    """A deployment made by an older fedsage: its gateway (here a real stand-in process)
    must still be found and stopped by PID and start time."""
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"]
    )
    try:
        gateway = ProcessIdentity.of(stand_in.pid)
        registry().add(KIND, "churn-old", _old_local_record("churn-old", gateway.pid, gateway.start))
        assert [r.name for r in list_records()] == ["churn-old"]
        described = invoke(["kyma", "describe", "churn-old"])
        assert described.exit_code == 0, described.output
        shown = json.loads(described.output)
        assert shown["status"] == "Degraded"  # gateway alive, its replica gone
        assert shown["local"]["replicas"][0]["status"] == "Missing"
        assert local.delete("churn-old") == [f"gateway pid {gateway.pid}", "replica churn-old-r0"]
        assert stand_in.wait(timeout=60) is not None  # stopped by its recorded identity
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()
    assert list_records() == []


def test_a_reused_pid_is_left_alone():
    """The recorded start time tells the gateway from a later process with its PID."""
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"]
    )
    try:
        record = _old_local_record("churn-reused", bystander.pid, "1")  # another start time
        registry().add(KIND, "churn-reused", record)
        local.delete("churn-reused")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_names_are_reserved_once():
    reserve_record(KymaDeployment(name="churn", target="local", status="Creating"))
    with pytest.raises(DeploymentError, match="already exists"):
        reserve_record(KymaDeployment(name="churn", target="local", status="Creating"))
    assert get_record("churn").status == "Creating"
