"""DuckDB's memory while a whole table or view is scored: a table scan is capped low, a
view (which may join, aggregate, sort) gets more room; both are reset afterwards."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from fedsage.data import DbConnection
from fedsage.scoring.request import check_arguments, checked_target, opened_request


def _limit(db: DbConnection) -> str:
    return str(db.execute_query("SELECT current_setting('memory_limit') AS m")[0][0][0])


@pytest.mark.parametrize(("name", "view", "cap"),
                         [("T", False, "32.0 MiB"), ("V", True, "128.0 MiB")])
def test_table_scan_capped_lower_than_a_view(tmp_path: Path, name: str, view: bool,
                                             cap: str) -> None:
    path = tmp_path / "scan.duckdb"
    with duckdb.connect(str(path)) as raw:
        raw.execute("CREATE TABLE T AS SELECT range AS id, range * 0.5 AS x FROM range(10)")
        raw.execute("CREATE VIEW V AS SELECT id, x FROM T WHERE id > 2")
    plan = check_arguments(
        "batch_transform", keep_columns=["id"], features=None, content_type=None,
        accept=None, if_exists="fail", workers=None, batch_rows=5, max_payload=6,
        prediction_column="prediction", connection=None, progress=False)
    with DbConnection.from_url(f"duckdb:///{path}") as db:
        before = _limit(db)
        where = checked_target(db.table(name), "OUT", plan, connection=db)
        with opened_request(db.table(name), where, plan, connection=db, workers=1,
                            progress=False) as request:
            assert request.source.table_scan
            assert request.source.view is view
            assert _limit(db) == cap
        assert _limit(db) == before
