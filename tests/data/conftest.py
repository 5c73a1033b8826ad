"""Fixtures of the data tests: a private home and fresh warnings per test.

The PostgreSQL server, ``pg_schema``, ``pg_dsn`` and the three-engine ``db`` fixture are
shared by every folder (tests/_databases.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # _pgserver, for the tests that import it


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_process_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process embedded-warehouse warning as a new process would."""
    import fedsage.data.config

    monkeypatch.setattr(fedsage.data.config, "_embedded_warned", False, raising=False)
