"""``fedsage score`` end to end: a real process, a DuckDB file, the session's model."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from fedsage.data import DbConnection

from ._helpers import make_table, read, table_names
from .conftest import FEATURES, ROWS, frame


def _score(home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDSAGE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "fedsage", "score", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_table_to_table(scoring_home, trained, reference, tmp_path):
    path = tmp_path / "w.duckdb"
    with DbConnection.from_url(f"duckdb:///{path}") as db:
        make_table(db, "IN", frame(ROWS))
    url = f"duckdb:///{path}"
    done = _score(
        scoring_home,
        trained["good"],
        "--table",
        "IN",
        "--to-table",
        "OUT",
        "--keep",
        "ID",
        "--features",
        ",".join(FEATURES),
        "--batch-rows",
        "10",
        "-c",
        url,
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {ROWS:,} rows to OUT" in done.stdout
    again = _score(
        scoring_home,
        trained["good"],
        "--query",
        'SELECT * FROM "IN"',
        "--to-table",
        "OUT",
        "--keep",
        "ID",
        "-c",
        url,
        "-q",
    )
    assert again.returncode == 1
    assert "error:" in again.stderr and "if_exists='replace'" in again.stderr
    with DbConnection.from_url(url) as db:
        assert read(db, "OUT")["prediction"].astype(int).tolist() == reference
        assert table_names(db) == {"IN", "OUT"}


def test_file_to_file_and_errors(scoring_home, trained, reference, tmp_path):
    source = tmp_path / "in.parquet"
    frame(ROWS).to_parquet(source)
    target = tmp_path / "out.csv"
    done = _score(
        scoring_home,
        trained["good"],
        "--file",
        str(source),
        "--to-file",
        str(target),
        "--keep",
        "ID",
        "--content-type",
        "application/json",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(target)["prediction"].astype(int).tolist() == reference
    both = _score(
        scoring_home,
        trained["good"],
        "--table",
        "A",
        "--file",
        str(source),
        "--to-file",
        str(target),
    )
    assert both.returncode == 1 and "exactly one input" in both.stderr
    missing = _score(
        scoring_home,
        trained["good"],
        "--table",
        "NOPE",
        "--to-table",
        "OUT",
        "-c",
        f"duckdb:///{tmp_path / 'x.duckdb'}",
        "-q",
    )
    assert missing.returncode == 1 and "NOPE" in missing.stderr
    assert "Traceback" not in missing.stderr
