"""Fixtures for runtime tests: one runtime cache per test run, real builds.

The cache folder is ``FEDSAGE_TEST_RUNTIME_CACHE`` when set (CI points it at a
folder that lives for the whole run), else pytest's own cache folder, so a second
local run finds the runtimes already built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedsage.runtimes import Runtime, resolve_runtime
from fedsage.runtimes.build import RUNTIMES_DIR_ENV

CACHE_ENV = "FEDSAGE_TEST_RUNTIME_CACHE"
HOST_PYTHON = Path(sys.executable)

_ISOLATED = ("FEDSAGE_PYTHON_CANDIDATES", "FEDSAGE_RUNTIME_STRICT", RUNTIMES_DIR_ENV)


@pytest.fixture(scope="session")
def runtime_cache(request: pytest.FixtureRequest) -> Path:
    raw = os.environ.get(CACHE_ENV)
    if raw:
        path = Path(raw).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()
    return Path(request.config.cache.mkdir("fedsage-runtimes")).resolve()


def _resolve_in(cache: Path, version: str) -> Runtime:
    with pytest.MonkeyPatch.context() as mp:
        for name in _ISOLATED:
            mp.delenv(name, raising=False)
        mp.setenv(RUNTIMES_DIR_ENV, str(cache / "exact"))
        return resolve_runtime(version)


@pytest.fixture(scope="session")
def rt_0231(runtime_cache: Path) -> Runtime:
    """The real 0.23-1 runtime (Python 3.7, scikit-learn 0.23.2)."""
    return _resolve_in(runtime_cache, "0.23-1")


@pytest.fixture(scope="session")
def rt_121(runtime_cache: Path) -> Runtime:
    """The real 1.2-1 runtime (Python 3.9, scikit-learn 1.2.1)."""
    return _resolve_in(runtime_cache, "1.2-1")


@pytest.fixture
def clean_runtime_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No discovery limits or strictness from outside; a private FEDSAGE_HOME."""
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    yield tmp_path
