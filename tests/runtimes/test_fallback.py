"""When the image's Python is missing: an approximate runtime, loudly, or an error."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fedsage.errors import RuntimeBuildError
from fedsage.runtimes import IMAGE_ENV, ApproximateRuntimeWarning, cached_runtime, resolve_runtime
from fedsage.runtimes.build import RUNTIMES_DIR_ENV
from fedsage.runtimes.discovery import CANDIDATES_ENV

OLD_APIS = Path(__file__).parent / "scripts" / "old_apis.py"

ONLY_OWN_PYTHON = str(Path(sys.executable))


@pytest.fixture
def only_own_python(clean_runtime_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CANDIDATES_ENV, ONLY_OWN_PYTHON)
    root = clean_runtime_env / "runtimes"
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(root))
    return root


def test_strict_refuses_an_approximate_runtime(only_own_python: Path) -> None:
    with pytest.raises(RuntimeBuildError) as info:
        resolve_runtime("0.23-1", strict=True)
    message = str(info.value)
    assert "Python 3.7" in message and "pyenv install 3.7" in message and "Strict" in message
    assert not any(p.name.startswith("0.23-1") for p in only_own_python.glob("*"))


def test_strict_from_the_environment(only_own_python: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEDSAGE_RUNTIME_STRICT", "1")
    with pytest.raises(RuntimeBuildError, match="Strict"):
        resolve_runtime("1.2-1")


def test_no_interpreter_at_all_is_an_error(clean_runtime_env: Path, monkeypatch) -> None:
    monkeypatch.setenv(CANDIDATES_ENV, "")
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(clean_runtime_env / "runtimes"))
    with pytest.raises(RuntimeBuildError, match="no Python for an approximate runtime"):
        resolve_runtime("0.23-1", strict=False)


@pytest.mark.slow
def test_fallback_warns_and_records_approximate(
    runtime_cache: Path, clean_runtime_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CANDIDATES_ENV, ONLY_OWN_PYTHON)
    monkeypatch.setenv(RUNTIMES_DIR_ENV, str(runtime_cache / "fallback"))
    with pytest.warns(ApproximateRuntimeWarning, match="APPROXIMATE") as record:
        runtime = resolve_runtime("0.23-1")
    assert len(record) == 1
    assert runtime.approximate and runtime.describe()["Approximate"] is True
    assert runtime.python_version.startswith("3.11.")
    assert runtime.packages["scikit-learn"] == "1.1.3"
    assert runtime.packages["pandas"] == "1.5.3"
    assert runtime.python != Path(sys.executable)  # never fedsage's own libraries
    out = subprocess.run(
        [str(runtime.python), str(OLD_APIS), str(tmp_path / "enc.joblib")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], **IMAGE_ENV},
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [
            str(runtime.python),
            "-c",
            "import sklearn, sagemaker_containers.beta.framework; print(sklearn.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "1.1.3", out.stderr

    def refuse(*args, **kwargs):
        raise AssertionError(f"a warm resolve started a process: {args!r}")

    with monkeypatch.context() as mp, warnings.catch_warnings(record=True) as again:
        mp.setattr(subprocess, "Popen", refuse)  # warm: no process, same runtime, warns again
        warnings.simplefilter("always")
        assert resolve_runtime("0.23-1") == runtime
        # A job starts on the built approximation at once, without asking the runner.
        assert cached_runtime("0.23-1") == runtime
    assert [w.category for w in again] == [ApproximateRuntimeWarning]
    monkeypatch.setenv("FEDSAGE_RUNTIME_STRICT", "1")
    assert cached_runtime("0.23-1") is None  # strict: the runner refuses it, with the reason
    with pytest.raises(RuntimeBuildError):
        resolve_runtime("0.23-1", strict=True)
