"""The real 0.23-1 and 1.2-1 runtimes: versions, old APIs, toolkits, warm resolution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedsage.runtimes import IMAGE_ENV, Runtime, resolve_runtime
from fedsage.runtimes.build import BUILD_LOG, MANIFEST, RUNTIMES_DIR_ENV

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).parent / "scripts"
PROBE = SCRIPTS / "probe_versions.py"
OLD_APIS = SCRIPTS / "old_apis.py"


def run(python: Path, script: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], **IMAGE_ENV, **(env or {})},
    )


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "rt_0231",
            {
                "python": "3.7.16",
                "sklearn": "0.23.2",
                "numpy": "1.19.2",
                "pandas": "1.1.3",
                "scipy": "1.5.3",
                "joblib": "1.3.2",
                "pyarrow": "1.0.0",
            },
        ),
        (
            "rt_121",
            {
                "python": "3.9.18",
                "sklearn": "1.2.1",
                "numpy": "1.24.1",
                "pandas": "1.1.3",
                "scipy": "1.8.0",
                "joblib": "1.5.3",
                "pyarrow": "14.0.1",
            },
        ),
    ],
)
def test_probe_reports_the_image_versions(fixture: str, expected: dict, request) -> None:
    runtime: Runtime = request.getfixturevalue(fixture)
    out = run(runtime.python, PROBE)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert Path(report.pop("prefix")) == runtime.root
    assert report == expected
    assert not runtime.approximate
    assert runtime.python_version == expected["python"]
    assert runtime.packages["scikit-learn"] == expected["sklearn"]
    assert runtime.env == IMAGE_ENV
    described = runtime.describe()
    assert described["FrameworkVersion"] == runtime.framework_version
    assert described["Packages"]["numpy"] == expected["numpy"]


def test_old_api_script_runs_on_0231_but_not_on_host(rt_0231: Runtime, tmp_path: Path) -> None:
    out = run(rt_0231.python, OLD_APIS, str(tmp_path / "enc.joblib"))
    assert out.returncode == 0, out.stderr
    assert "['x0_a', 'x0_b'] ['blue', 'fox', 'red']" in out.stdout
    host = run(Path(sys.executable), OLD_APIS, str(tmp_path / "host.joblib"))
    assert host.returncode != 0  # today's scikit-learn has dropped these calls


@pytest.mark.parametrize("fixture", ["rt_0231", "rt_121"])
def test_toolkits_import(fixture: str, request, tmp_path: Path) -> None:
    runtime: Runtime = request.getfixturevalue(fixture)
    code = (
        "import sagemaker_training, sagemaker_containers, pkg_resources\n"
        "from sagemaker_containers.beta.framework import encoders, worker, env\n"
        "from sagemaker_training import environment\n"
        "import sagemaker_inference, flask, boto3\n"
        "print(encoders.array_to_csv([[1, 2]]).strip())\n"
    )
    script = tmp_path / "toolkits.py"
    script.write_text(code)
    out = run(runtime.python, script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1,2"


def test_console_scripts_survive_the_rename(rt_121: Runtime) -> None:
    out = subprocess.run(
        [str(rt_121.root / "bin" / "gunicorn"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "23.0.0" in out.stdout + out.stderr


def test_cache_holds_only_complete_runtimes(rt_0231: Runtime, rt_121: Runtime) -> None:
    root = rt_0231.root.parent
    assert root == rt_121.root.parent
    for runtime in (rt_0231, rt_121):
        manifest = json.loads((runtime.root / MANIFEST).read_text())
        assert manifest["spec_hash"] == runtime.spec_hash
        assert manifest["packages"] == runtime.packages
    assert not list(root.glob(".build-*"))
    names = [json.loads(line)["name"] for line in (root / BUILD_LOG).read_text().splitlines()]
    assert names.count(rt_0231.root.name) == 1 and names.count(rt_121.root.name) == 1


def test_warm_resolve_starts_no_process(rt_0231: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(rt_0231.root.parent))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a warm resolve started a process: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    started = time.perf_counter()
    runtime = resolve_runtime("0.23-1")
    elapsed = time.perf_counter() - started
    assert runtime == rt_0231
    assert elapsed < 0.1
