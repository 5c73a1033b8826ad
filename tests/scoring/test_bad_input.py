"""Bad input: each a clear fedsage error before anything is written, never a partial table."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsage.errors import ConfigurationError, DataError, EndpointError, ScoringError

from ._helpers import make_table, read, scoring_endpoints, table_names
from .conftest import frame


def test_missing_table(db, dwc, trained):
    before = table_names(db)
    with pytest.raises(DataError, match="NO_SUCH_VIEW"):
        dwc.batch_transform(trained["good"], "NO_SUCH_VIEW", "OUT", connection=db, progress=False)
    assert table_names(db) == before
    assert scoring_endpoints() == []


def test_unknown_keep_column(duck, dwc, trained):
    make_table(duck, "IN", frame(20))
    with pytest.raises(ConfigurationError, match=r"keep_columns.*'NOPE'.*'ID', 'A'"):
        dwc.batch_transform(
            trained["good"], duck.table("IN"), "OUT", keep_columns=["NOPE"], progress=False
        )
    assert "OUT" not in table_names(duck)


def test_a_column_the_model_does_not_know(db, dwc, trained):
    data = frame(30)
    data["D"] = 1.0
    make_table(db, "IN", data)
    before = table_names(db)
    with pytest.raises(ScoringError, match=r"rows 1 to 10 .*status 500.*feature") as info:
        dwc.batch_transform(
            trained["good"],
            db.table("IN"),
            "OUT",
            keep_columns=["ID"],
            batch_rows=10,
            workers=1,
            progress=False,
        )
    assert "expecting 3 features" in str(info.value) or "4 features" in str(info.value)
    assert table_names(db) == before
    assert scoring_endpoints() == []


def test_nulls(db, dwc, trained):
    data = frame(30)
    data.loc[14, "B"] = None
    make_table(db, "IN", data)
    before = table_names(db)
    with pytest.raises(ScoringError, match=r"'B' is NULL in input row 15"):
        dwc.batch_transform(
            trained["good"],
            db.table("IN"),
            "OUT",
            keep_columns=["ID"],
            batch_rows=10,
            progress=False,
        )
    assert table_names(db) == before
    assert scoring_endpoints() == []


def test_strings_in_numeric_columns(dwc, trained, tmp_path):
    source = tmp_path / "in.csv"
    data = frame(10).astype({"B": object})
    data.loc[3, "B"] = "abc"
    data.to_csv(source, index=False)
    with pytest.raises(ConfigurationError, match=r"feature column 'B' is string, not a number"):
        dwc.batch_transform(
            trained["good"], source, tmp_path / "out.csv", keep_columns=["ID"], progress=False
        )
    with pytest.raises(ConfigurationError, match=r"column 'B'"):
        dwc.batch_transform(
            trained["good"], data, tmp_path / "out.csv", keep_columns=["ID"], progress=False
        )
    assert not (tmp_path / "out.csv").exists()
    assert scoring_endpoints() == []


def test_model_without_model_fn(duck, dwc, trained):
    make_table(duck, "IN", frame(20))
    with pytest.raises((EndpointError, ScoringError), match="model_fn"):
        dwc.batch_transform(
            trained["plain"], duck.table("IN"), "OUT", keep_columns=["ID"], progress=False
        )
    assert "OUT" not in table_names(duck)
    assert scoring_endpoints() == []


@pytest.mark.parametrize("name", ["", " OUT", "OUT\x00", "a.b", "x" * 200])
def test_illegal_target_name(db, dwc, trained, name):
    make_table(db, "IN", frame(10))
    before = table_names(db)
    with pytest.raises((DataError, ConfigurationError), match="target"):
        dwc.batch_transform(
            trained["good"], db.table("IN"), name, keep_columns=["ID"], progress=False
        )
    assert table_names(db) == before


def test_existing_target_with_fail(db, dwc, trained):
    make_table(db, "IN", frame(10))
    make_table(db, "OUT", pd.DataFrame({"ID": [7], "prediction": [1]}))
    with pytest.raises(DataError, match="exists; pass if_exists='replace'"):
        dwc.batch_transform(
            trained["good"], db.table("IN"), "OUT", keep_columns=["ID"], progress=False
        )
    assert read(db, "OUT").to_dict("list") == {"ID": [7], "prediction": [1]}
    assert scoring_endpoints() == []


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"content_type": "text/xml"}, "content_type"),
        ({"accept": "image/png"}, "accept"),
        ({"if_exists": "merge"}, "if_exists"),
        ({"workers": 0}, "workers"),
        ({"batch_rows": 0}, "batch_rows"),
        ({"max_payload": 0}, "max_payload"),
        ({"max_payload": 500}, "max_payload"),
        ({"keep_columns": [1]}, "keep_columns"),
        ({"features": []}, "features"),
        ({"keep_columns": ["ID"], "features": ["ID", "A"]}, "features and keep_columns"),
        ({"prediction_column": ""}, "prediction_column"),
        ({"connection": "duckdb:///x"}, "connection"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_arguments_are_checked_first(dwc, trained, tmp_path, kwargs, param):
    with pytest.raises(ConfigurationError, match=f"the {param} parameter"):
        dwc.batch_transform(trained["good"], frame(5), tmp_path / "out.csv", **kwargs)
    assert not (tmp_path / "out.csv").exists()


def test_unknown_model_and_bad_kinds(dwc, tmp_path):
    with pytest.raises(ConfigurationError, match="no local training job or endpoint"):
        dwc.batch_transform("no-such-job", frame(5), tmp_path / "o.csv", progress=False)
    with pytest.raises(ConfigurationError, match="the data parameter"):
        dwc.batch_transform("no-such-job", 42, tmp_path / "o.csv", progress=False)
    with pytest.raises(ConfigurationError, match="connection is needed"):
        dwc.batch_transform("no-such-job", frame(5), "SCORES", progress=False)
