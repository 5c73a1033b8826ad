"""The ``fedsage data`` commands and the sample data sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _cli import invoke

from fedsage.data import DbConnection
from fedsage.data.config import EmbeddedWarehouseWarning
from fedsage.data.samples import load_samples, sample_frames

_ENV = {"COLUMNS": "250"}


def test_samples_are_deterministic_and_idempotent() -> None:
    assert load_samples() == ["IRIS", "BREAST_CANCER", "SALES"]
    assert load_samples() == ["IRIS", "BREAST_CANCER", "SALES"]
    with pytest.warns(EmbeddedWarehouseWarning), DbConnection() as db:
        assert db.get_table_size("IRIS") == [(150,)]
        assert db.get_table_size("BREAST_CANCER") == [(569,)]
        assert db.get_table_size("SALES") == [(5000,)]
        species = db.to_pandas('SELECT DISTINCT "SPECIES" FROM "IRIS" ORDER BY 1')
        assert species["SPECIES"].tolist() == ["setosa", "versicolor", "virginica"]
    pd.testing.assert_frame_equal(sample_frames()["SALES"], sample_frames()["SALES"])


def test_cli_commands(tmp_path: Path) -> None:
    assert invoke(["data", "samples"], env=_ENV).exit_code == 0
    result = invoke(["data", "tables"], env=_ENV)
    assert result.exit_code == 0 and "SALES" in result.output
    # No config.json: one warning line, once per process, naming where it looked.
    assert result.output.count("warning: no config.json found") == 1
    assert str(tmp_path / "config.json") in "".join(result.output.split())
    assert "warning:" not in invoke(["data", "views"], env=_ENV).output
    assert invoke(["data", "views"], env=_ENV).exit_code == 0
    result = invoke(["data", "describe", "IRIS"], env=_ENV)
    assert result.exit_code == 0 and "SPECIES" in result.output
    result = invoke(["data", "head", "IRIS", "-n", "2"], env=_ENV)
    assert result.exit_code == 0 and "setosa" in result.output
    out = tmp_path / "sales.csv"
    result = invoke(["data", "export", 'SELECT * FROM "SALES"', "--to", str(out)], env=_ENV)
    assert result.exit_code == 0 and "5,000 rows" in result.output
    assert len(out.read_text().splitlines()) == 5000
    result = invoke(["data", "export", "SALES", "--to", str(tmp_path / "s.parquet"),
                                 "--format", "parquet"], env=_ENV)
    assert result.exit_code == 0


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = invoke(["data", "export", "DELETE FROM x", "--to", str(tmp_path / "x.csv")], env=_ENV)
    assert result.exit_code == 1 and "read-only" in result.output
    assert "Traceback" not in result.output
    result = invoke(["data", "tables", "--config", str(tmp_path / "missing.json")], env=_ENV)
    assert result.exit_code == 1 and "not found" in result.output
    assert invoke(["data", "describe", "nope"], env=_ENV).exit_code == 1
