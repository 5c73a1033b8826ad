"""DbConnection.bounded_memory: DuckDB's memory_limit lowered for a block and reset after,
only when the reset puts back exactly what was in effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsage.data import DbConnection

MB = 1 << 20


def _limit(db: DbConnection) -> str:
    rows, _ = db.execute_query("SELECT current_setting('memory_limit') AS m")
    return str(rows[0][0])


def test_lowered_inside_and_reset_after(tmp_path: Path) -> None:
    with DbConnection.from_url(f"duckdb:///{tmp_path / 'm.duckdb'}") as db:
        before = _limit(db)
        with db.bounded_memory(128 * MB) as lowered:
            assert lowered
            assert _limit(db) == "128.0 MiB"
        assert _limit(db) == before
        with pytest.raises(RuntimeError), db.bounded_memory(64 * MB):
            assert _limit(db) == "64.0 MiB"
            raise RuntimeError("a failure inside still resets the limit")
        assert _limit(db) == before


def test_a_configured_limit_is_left_alone(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'm.duckdb'}?memory_limit=300MB"
    with DbConnection.from_url(url) as db:
        before = _limit(db)
        with db.bounded_memory(128 * MB) as lowered:
            assert not lowered
            assert _limit(db) == before
        assert _limit(db) == before


def test_never_raised(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'm.duckdb'}"
    with DbConnection.from_url(url) as db, db.bounded_memory(1 << 50) as lowered:
        assert not lowered  # above the default: nothing to do


def test_other_engines_are_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    with DbConnection.from_url(url) as db, db.bounded_memory(128 * MB) as lowered:
        assert not lowered
