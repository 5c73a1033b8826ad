"""DwcSagemaker.batch_transform on DuckDB, SQLite and PostgreSQL: tables in, tables out."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsage.scoring.engine import ScoringSummary

from ._helpers import make_table, read, scoring_endpoints, table_names
from .conftest import FEATURES, ROWS, frame


def test_table_to_table_equals_the_endpoint(db, dwc, trained, reference):
    make_table(db, "CUSTOMERS", frame(ROWS))
    before = table_names(db)
    summary = dwc.batch_transform(
        trained["good"],
        db.table("CUSTOMERS"),
        "SCORES",
        keep_columns=["ID"],
        features=FEATURES,
        batch_rows=10,
        workers=2,
        connection=db,
    )
    assert isinstance(summary, ScoringSummary)
    assert (summary.rows_in, summary.rows_written) == (ROWS, ROWS)
    assert summary.target.endswith("SCORES") and summary.columns == ["ID", "prediction"]
    assert "<table>" in summary._repr_html_() and "SCORES" in summary._repr_html_()
    out = read(db, "SCORES")
    assert list(out.columns) == ["ID", "prediction"]
    assert out["ID"].tolist() == list(range(1, ROWS + 1))
    assert out["prediction"].astype(int).tolist() == reference
    assert table_names(db) == before | {"SCORES"}  # no staging table left
    assert scoring_endpoints() == []


def test_query_input_and_if_exists(db, dwc, trained, reference):
    make_table(db, "CUSTOMERS", frame(ROWS))
    quoted = db.dialect.qualified("CUSTOMERS", db.write_schema)
    cols = ", ".join(db.dialect.quote(c) for c in ["ID", *FEATURES])
    query = db.query(f"SELECT {cols} FROM {quoted} WHERE {db.dialect.quote('ID')} <= 30")
    kwargs = {"keep_columns": ["ID"], "batch_rows": 7, "progress": False}
    dwc.batch_transform(trained["good"], query, "SCORES", **kwargs)
    assert len(read(db, "SCORES")) == 30
    dwc.batch_transform(trained["good"], query, "SCORES", if_exists="append", **kwargs)
    appended = read(db, "SCORES")
    assert len(appended) == 60
    assert appended["prediction"].astype(int).tolist()[::2] == reference[:30]
    dwc.batch_transform(trained["good"], query, "SCORES", if_exists="replace", **kwargs)
    assert read(db, "SCORES")["prediction"].astype(int).tolist() == reference[:30]
    assert scoring_endpoints() == []


@pytest.mark.parametrize("content_type", ["application/json", "application/x-npy"])
def test_other_content_types_and_small_payloads(duck, dwc, trained, reference, content_type):
    make_table(duck, "CUSTOMERS", frame(ROWS))
    summary = dwc.batch_transform(
        trained["good"],
        "CUSTOMERS",
        duck.table("OUT"),
        keep_columns="ID",
        features=FEATURES,
        content_type=content_type,
        batch_rows=20,
        max_payload=0.0003,
        connection=duck,
        prediction_column="label",
        progress=False,
    )
    assert summary.requests > 3  # ~300 bytes per request: every batch was split
    assert read(duck, "OUT")["label"].astype(int).tolist() == reference


def test_dataframe_and_files(dwc, trained, reference, tmp_path):
    data = frame(ROWS)
    parquet = tmp_path / "scores.parquet"
    dwc.batch_transform(
        trained["good"], data, parquet, keep_columns=["ID"], batch_rows=9, progress=False
    )
    assert pd.read_parquet(parquet)["prediction"].astype(int).tolist() == reference
    source = tmp_path / "input.csv"
    data.to_csv(source, index=False)
    target = tmp_path / "scores.csv"
    summary = dwc.batch_transform(
        trained["good"], str(source), str(target), keep_columns=["ID"], batch_rows=9, progress=False
    )
    assert summary.rows_written == ROWS
    written = pd.read_csv(target)
    assert written["ID"].tolist() == data["ID"].tolist()
    assert written["prediction"].astype(int).tolist() == reference


def test_existing_endpoint_scores_and_stays(duck, dwc, trained, reference):
    make_table(duck, "CUSTOMERS", frame(ROWS))
    name = dwc.deploy(trained["good"], 1, "local", endpoint_name="scorer", cleanup_resources=False)
    try:
        dwc.batch_transform(
            name,
            duck.table("CUSTOMERS"),
            "OUT",
            keep_columns=["ID"],
            features=FEATURES,
            batch_rows=10,
            progress=False,
        )
        assert read(duck, "OUT")["prediction"].astype(int).tolist() == reference
        assert dwc._backend.describe_endpoint(name)["EndpointStatus"] == "InService"
    finally:
        dwc.delete_endpoint(name)


def test_handle_and_one_row_tail(duck, dwc, trained, reference):
    """A 1-row remainder rides with the batch before it (SageMaker's CSV decoder squeezes
    a 1-row request to one dimension); 21 rows with batch_rows=10 score as 10 + 11."""
    handle = dwc.attach(trained["good"])
    data = frame(ROWS).head(21)
    summary = dwc.batch_transform(
        handle, data, duck.table("OUT"), keep_columns=["ID"], batch_rows=10, progress=False
    )
    assert summary.requests == 2
    assert read(duck, "OUT")["prediction"].astype(int).tolist() == reference[:21]
