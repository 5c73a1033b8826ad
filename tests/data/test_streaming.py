"""Streaming extraction on every engine: batches, Arrow, pandas and channel files."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedsage.data import DbConnection, Query, Table
from fedsage.data.export import write_batches
from fedsage.errors import ConfigurationError, DataError

FRAME = pd.DataFrame({
    "N": range(1, 1001),
    "X": [i / 4 for i in range(1000)],
    "S": ["a,b", 'q"uote', "", None, "ü ☃"] * 200,
})


@pytest.fixture
def loaded(db: DbConnection) -> DbConnection:
    db.create_table(f"CREATE TABLE {db.dialect.qualified('data set', db.write_schema)} "
                    "(N INTEGER, X DOUBLE PRECISION, S VARCHAR(20))")
    db.insert_into_table("data set", FRAME)
    return db


def test_iter_batches_bounds_batch_size(loaded: DbConnection) -> None:
    batches = list(loaded.iter_batches(loaded.table("data set"), batch_rows=128))
    assert all(b.num_rows <= 128 for b in batches)
    assert sum(b.num_rows for b in batches) == 1000
    assert len({b.schema for b in batches}) == 1


def test_batches_after_the_first_keep_their_values(loaded: DbConnection) -> None:
    # SQLite (rows converted by fedsage) once turned the strings of every batch after
    # the first into NULLs.
    batches = list(loaded.iter_batches(loaded.table("data set"), batch_rows=128))
    table = pa.Table.from_batches(batches)
    table = table.rename_columns([c.upper() for c in table.column_names]).sort_by("N")
    assert table.column("S").to_pylist() == [
        None if pd.isna(v) else v for v in FRAME["S"]]
    assert table.column("X").to_pylist() == FRAME["X"].tolist()


def test_to_arrow_and_pandas_round_trip(loaded: DbConnection) -> None:
    q = loaded.dialect.qualified("data set", loaded.schema)
    frame = loaded.to_pandas(f"SELECT N, X, S FROM {q} ORDER BY N")
    frame.columns = [c.upper() for c in frame.columns]
    expected = FRAME.copy()
    # NULL stays NULL and '' stays '' on every engine.
    strings = loaded.to_arrow(f"SELECT S FROM {q} ORDER BY N").column(0).to_pylist()
    assert strings[:5] == ["a,b", 'q"uote', "", None, "ü ☃"]
    assert frame["N"].tolist() == expected["N"].tolist()
    assert frame["X"].tolist() == expected["X"].tolist()
    table = loaded.to_arrow("data set")
    assert isinstance(table, pa.Table) and table.num_rows == 1000


def test_empty_result_keeps_the_schema(loaded: DbConnection, tmp_path: Path) -> None:
    q = loaded.dialect.qualified("data set", loaded.schema)
    query = loaded.query(f"SELECT N, S FROM {q} WHERE N < 0")
    assert loaded.to_arrow(query).num_rows == 0
    assert query.export_channel(tmp_path / "e.csv") == 0
    assert (tmp_path / "e.csv").read_bytes() == b""
    assert query.export_channel(tmp_path / "e.parquet", "parquet") == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_csv_channel_matches_pandas_without_header(loaded: DbConnection, tmp_path: Path) -> None:
    q = loaded.dialect.qualified("data set", loaded.schema)
    source = loaded.query(f"SELECT N, X, S FROM {q} ORDER BY N")
    seen: list[int] = []
    assert source.export_channel(tmp_path / "train.csv", progress=seen.append) == 1000
    assert seen and seen[-1] >= 999
    back = pd.read_csv(tmp_path / "train.csv", header=None, keep_default_na=False,
                       na_values=[])
    assert back.shape == (1000, 3)
    assert back[0].tolist() == FRAME["N"].tolist()
    assert back[1].tolist() == FRAME["X"].tolist()
    assert back[2].tolist()[:3] == ["a,b", 'q"uote', ""]


def test_parquet_channel(loaded: DbConnection, tmp_path: Path) -> None:
    rows = loaded.export("data set", tmp_path / "t.parquet", "parquet")
    assert rows == 1000
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.num_rows == 1000
    assert [c.lower() for c in table.column_names] == ["n", "x", "s", "inserted_at"]


def test_query_with_bound_hostile_value(loaded: DbConnection) -> None:
    marker = "%s" if loaded.dialect.name == "postgresql" else "?"
    q = loaded.dialect.qualified("data set", loaded.schema)
    query = loaded.query(f"SELECT N FROM {q} WHERE S = {marker} ORDER BY N",
                         ["'; DROP TABLE x; --"])
    assert loaded.to_arrow(query).num_rows == 0
    query = loaded.query(f"SELECT N FROM {q} WHERE S = {marker} ORDER BY N", ['q"uote'])
    assert loaded.to_arrow(query).num_rows == 200


def test_sources_refuse_writes_and_bad_formats(loaded: DbConnection, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="read-only"):
        loaded.query('DELETE FROM "data set"')
    with pytest.raises(DataError, match="read-only"):
        loaded.export('DELETE FROM "data set"', tmp_path / "x.csv")
    with pytest.raises(ConfigurationError, match="file_format"):
        loaded.export("data set", tmp_path / "x.json", "json")
    with pytest.raises(DataError):
        loaded.export("no such table", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()  # atomic: nothing half-written stays
    assert loaded.get_table_size("data set") == [(1000,)]


def test_source_reprs_have_no_secrets(loaded: DbConnection) -> None:
    assert repr(loaded.table("data set")).startswith("Table(")
    assert isinstance(loaded.query("SELECT 1 AS one"), Query)
    assert isinstance(loaded.table("data set"), Table)
    assert "fedsage:fedsage" not in repr(loaded) and "secret" not in repr(loaded)


def test_channels_contract_signature(loaded: DbConnection, tmp_path: Path) -> None:
    # fedsage/channels.py calls export_channel(path, file_format) and reads the count.
    table = loaded.table("data set")
    assert table.export_channel(tmp_path / "c.csv", "csv") == 1000
    assert len(io.StringIO((tmp_path / "c.csv").read_text()).readlines()) == 1000


def test_write_batches_pipeline_errors_leave_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = pa.record_batch({"a": [1, 2], "s": ["x", "y"]})
    for fmt in ("csv", "parquet"):
        with pytest.raises(DataError, match="changed schema"):
            write_batches(iter([good, pa.record_batch({"b": ["x"]})]), tmp_path / "x", fmt)
        assert list(tmp_path.iterdir()) == []

    calls: list[int] = []
    real_write = pq.ParquetWriter.write_batch

    def flaky_write(self: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
        calls.append(batch.num_rows)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(self, batch)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", flaky_write)
    # The writer thread fails on the second batch: raised here, the file removed.
    for batches in ([good] * 10, [good] * 2):
        calls.clear()
        with pytest.raises(OSError, match="disk full"):
            write_batches(iter(batches), tmp_path / "x.parquet", "parquet")
        assert list(tmp_path.iterdir()) == []
        assert len(calls) <= 2 + 2  # reading stopped soon after (queue depth 2)
    monkeypatch.undo()

    def failing_reader() -> Iterator[pa.RecordBatch]:
        yield good
        raise DataError("boom")

    with pytest.raises(DataError, match="boom"):
        write_batches(failing_reader(), tmp_path / "y.parquet", "parquet")
    assert list(tmp_path.iterdir()) == []
    seen: list[int] = []
    assert write_batches(iter([good] * 50), tmp_path / "z.parquet", "parquet", seen.append) == 100
    assert seen[-1] == 100
    back = pq.read_table(tmp_path / "z.parquet")
    assert back.column("a").to_pylist() == [1, 2] * 50
    # Text is dictionary-encoded, numbers are not.
    meta = pq.ParquetFile(tmp_path / "z.parquet").metadata.row_group(0)
    assert "RLE_DICTIONARY" in meta.column(1).encodings
    assert "RLE_DICTIONARY" not in meta.column(0).encodings
