"""Run-wide fixtures: every test gets its own FEDSAGE_HOME and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# rich pins a console's width when it is built if COLUMNS is set then, and the CLI's
# consoles are built when its first sub-command is imported, inside whichever test runs
# first in this process.  Built here, with COLUMNS unset, they read COLUMNS at each
# print, so every test's own COLUMNS applies, in any order and under pytest-xdist.
os.environ.pop("COLUMNS", None)
import fedsage.cli._common  # noqa: F401

# PostgreSQL server, schemas and the three-engine ``db`` fixture, for every folder.
pytest_plugins = ["_databases"]

_GUARDED_PREFIXES = ("SM_", "SAGEMAKER_", "FEDSAGE_", "AWS_")


@pytest.fixture(autouse=True)
def clean_environ(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private home folder and no leftover SM_*/FEDSAGE_* variables (restored after)."""
    runtime_cache = os.environ.get("FEDSAGE_TEST_RUNTIME_CACHE")
    for key in list(os.environ):
        if key.startswith(_GUARDED_PREFIXES) and key != "FEDSAGE_TEST_RUNTIME_CACHE":
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("fedsage-home")
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    # Runtimes take tens of seconds to build: share one cache across the whole run.
    cache = Path(runtime_cache) if runtime_cache else tmp_path_factory.getbasetemp() / "runtimes"
    monkeypatch.setenv("FEDSAGE_RUNTIMES_DIR", str(cache))
    monkeypatch.setenv("FEDSAGE_TEST_RUNTIME_CACHE", str(cache))
    yield home
