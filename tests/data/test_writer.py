"""TableWriter and FileWriter: staging, one-transaction commit, nothing half written.

Every ``db`` test runs on a DuckDB file, a SQLite file and the suite's PostgreSQL.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedsage.data import DbConnection
from fedsage.data.writer import IF_EXISTS, FileWriter, TableWriter, open_writer
from fedsage.errors import ConfigurationError, DataError

SCHEMA = pa.schema([("id", pa.int64()), ("prediction", pa.float64()), ("label", pa.string())])


def _batch(start: int, rows: int = 3) -> pa.RecordBatch:
    ids = list(range(start, start + rows))
    return pa.record_batch([pa.array(ids, pa.int64()),
                            pa.array([i / 7 for i in ids], pa.float64()),
                            pa.array([f"r{i}" for i in ids])], schema=SCHEMA)


def _rows(db: DbConnection, table: str = "SCORES") -> list[tuple]:
    rows, _ = db.execute_query(f'SELECT * FROM "{table}" ORDER BY "id"')
    return rows


def _tables(db: DbConnection) -> set[str]:
    return {row[0] for row in db.get_user_tables()[0]}


def _write(db: DbConnection, if_exists: str, *starts: int, table: str = "SCORES") -> int:
    with TableWriter(db, table, arrow_schema=SCHEMA, if_exists=if_exists) as writer:
        for start in starts:
            writer.write(_batch(start))
        return writer.commit(expected_rows=3 * len(starts))


def _expected(*starts: int) -> list[tuple]:
    return sorted((i, i / 7, f"r{i}") for s in starts for i in range(s, s + 3))


def test_if_exists_values() -> None:
    assert IF_EXISTS == ("fail", "replace", "append")


def test_fail_creates_replace_replaces_append_appends(db: DbConnection) -> None:
    assert _write(db, "fail", 0, 3) == 6
    assert _rows(db) == _expected(0, 3)
    assert _write(db, "replace", 10) == 3
    assert _rows(db) == _expected(10)
    assert _write(db, "append", 20, 23) == 6
    assert _rows(db) == _expected(10, 20, 23)
    assert _tables(db) == {"SCORES"}


def test_append_creates_a_missing_target(db: DbConnection) -> None:
    assert _write(db, "append", 0) == 3
    assert _rows(db) == _expected(0)


def test_existing_target_with_fail_is_refused_before_anything(db: DbConnection) -> None:
    _write(db, "fail", 0)
    with pytest.raises(DataError, match=r"exists; pass if_exists='replace'.*'append'"):
        TableWriter(db, "SCORES", arrow_schema=SCHEMA)
    assert _rows(db) == _expected(0)
    assert _tables(db) == {"SCORES"}


@pytest.mark.parametrize("name", ["", "bad\x00name", " padded", "sales.scores", "x" * 200])
def test_illegal_identifier_is_refused(db: DbConnection, name: str) -> None:
    with pytest.raises(DataError, match="table parameter"):
        TableWriter(db, name, arrow_schema=SCHEMA)
    assert _tables(db) == set()


def test_quoted_names_are_kept_exactly(db: DbConnection) -> None:
    schema = pa.schema([("Order Id", pa.int64()), ('say "hi"', pa.string())])
    with TableWriter(db, 'My "Scores"', arrow_schema=schema) as writer:
        writer.write(pa.table({"Order Id": [1], 'say "hi"': ["x"]}, schema=schema))
        writer.commit(1)
    assert _tables(db) == {'My "Scores"'}
    assert db.to_arrow(db.table('My "Scores"')).to_pylist() == [{"Order Id": 1,
                                                                  'say "hi"': "x"}]


def test_bad_if_exists_and_schema_are_refused(db: DbConnection) -> None:
    with pytest.raises(ConfigurationError, match="if_exists parameter"):
        TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="overwrite")
    with pytest.raises(ConfigurationError, match="arrow_schema parameter"):
        TableWriter(db, "SCORES", arrow_schema=["id"])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no SQL column type"):
        TableWriter(db, "SCORES", arrow_schema=pa.schema([("x", pa.list_(pa.int64()))]))
    assert _tables(db) == set()


def test_append_with_incompatible_columns_is_refused(db: DbConnection) -> None:
    _write(db, "fail", 0)
    other = pa.schema([("id", pa.int64()), ("score", pa.float64())])
    with pytest.raises(DataError, match="has no column 'score'"):
        TableWriter(db, "SCORES", arrow_schema=other, if_exists="append")
    wrong_type = pa.schema([("id", pa.int64()), ("label", pa.float64())])
    with pytest.raises(DataError, match=r"'label' is .* which does not take double"):
        TableWriter(db, "SCORES", arrow_schema=wrong_type, if_exists="append")
    assert _rows(db) == _expected(0)
    assert _tables(db) == {"SCORES"}


def test_append_a_subset_of_nullable_columns(db: DbConnection) -> None:
    _write(db, "fail", 0)
    subset = pa.schema([("id", pa.int64())])
    with TableWriter(db, "SCORES", arrow_schema=subset, if_exists="append") as writer:
        writer.write(pa.table({"id": [100]}))
        writer.commit(1)
    assert _rows(db)[-1] == (100, None, None)


def test_exception_mid_write_leaves_target_as_before(db: DbConnection) -> None:
    _write(db, "fail", 0)
    with pytest.raises(RuntimeError, match="model failed"), \
            TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace") as writer:
        writer.write(_batch(10))
        writer.write(_batch(13))
        raise RuntimeError("model failed on the third batch")
    assert _rows(db) == _expected(0)
    assert _tables(db) == {"SCORES"}


def test_keyboard_interrupt_in_the_with_block(db: DbConnection) -> None:
    _write(db, "fail", 0)
    with pytest.raises(KeyboardInterrupt), \
            TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="append") as writer:
        writer.write(_batch(10))
        raise KeyboardInterrupt
    assert writer.abort() is None  # idempotent
    assert _rows(db) == _expected(0)
    assert _tables(db) == {"SCORES"}


def test_wrong_expected_rows_leaves_target_untouched(db: DbConnection) -> None:
    _write(db, "fail", 0)
    writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace")
    writer.write(_batch(10))
    with pytest.raises(DataError, match="4 rows expected, 3 staged"):
        writer.commit(expected_rows=4)
    assert _rows(db) == _expected(0)
    with pytest.raises(DataError, match="aborted"):
        writer.write(_batch(20))
    assert _tables(db) == {"SCORES"}


def test_batch_with_other_columns_is_refused(db: DbConnection) -> None:
    with TableWriter(db, "SCORES", arrow_schema=SCHEMA) as writer:
        with pytest.raises(DataError, match="opened for"):
            writer.write(pa.table({"id": [1]}))
        writer.write(pa.table({"id": pa.array([1], pa.int32()), "prediction": [0.5],
                               "label": ["a"]}))  # int32 -> int64: cast
        assert writer.rows_written == 1
        writer.commit()
    assert _rows(db) == [(1, 0.5, "a")]


def test_nulls_and_floats_round_trip_exactly(db: DbConnection) -> None:
    values = [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308,
              123456789.12345679, None, math.pi]
    schema = pa.schema([("id", pa.int64()), ("prediction", pa.float64()), ("n", pa.int64()),
                        ("label", pa.string())])
    data = pa.table({"id": list(range(len(values))), "prediction": values,
                     "n": [None, -(2**63), 2**63 - 1, 0, None, 1, 2, 3, 4],
                     "label": [None, "", "a,b", 'q"uote', "new\nline", "ü", None, "NULL", " "]},
                    schema=schema)
    with TableWriter(db, "SCORES", arrow_schema=schema) as writer:
        writer.write(data)
        writer.commit(len(values))
    back = db.to_arrow('SELECT * FROM "SCORES" ORDER BY "id"')
    assert back.column("label").to_pylist() == data.column("label").to_pylist()
    assert back.column("n").to_pylist() == data.column("n").to_pylist()
    got = back.column("prediction").to_pylist()
    if db.dialect.name == "sqlite":  # SQLite stores integral REALs as integers: -0.0 -> 0
        values[2] = 0.0
    assert [None if v is None else v.hex() for v in got] == \
        [None if v is None else float(v).hex() for v in values]


def test_nan_and_infinity(db: DbConnection) -> None:
    schema = pa.schema([("id", pa.int64()), ("prediction", pa.float64())])
    with TableWriter(db, "SCORES", arrow_schema=schema) as writer:
        writer.write(pa.table({"id": [1, 2, 3], "prediction": [float("nan"), float("inf"),
                                                               float("-inf")]}))
        writer.commit(3)
    got = db.to_arrow('SELECT * FROM "SCORES" ORDER BY "id"').column("prediction").to_pylist()
    # SQLite stores NaN as NULL (sqlite3 turns NaN into NULL on bind): documented.
    assert got[0] is None if db.dialect.name == "sqlite" else math.isnan(got[0])
    assert got[1:] == [float("inf"), float("-inf")]


def test_open_writer_dispatches(db: DbConnection, tmp_path: Path) -> None:
    with open_writer(db.table("SCORES"), arrow_schema=SCHEMA) as writer:
        assert isinstance(writer, TableWriter)
        writer.write(_batch(0))
        writer.commit(3)
    with open_writer((db, "OTHER"), arrow_schema=SCHEMA) as writer:
        assert isinstance(writer, TableWriter)
    with open_writer(tmp_path / "out.csv", arrow_schema=SCHEMA) as writer:
        assert isinstance(writer, FileWriter)
    with pytest.raises(ConfigurationError, match="target parameter"):
        open_writer(42, arrow_schema=SCHEMA)  # type: ignore[arg-type]
    assert _tables(db) == {"SCORES"}
    assert list(tmp_path.glob("*.part")) == [] and list(tmp_path.glob(".*")) == []


# -- files ---------------------------------------------------------------------------


def _read_file(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=SCHEMA)).to_pylist()


def _write_file(path: Path, if_exists: str, *starts: int) -> int:
    with FileWriter(path, arrow_schema=SCHEMA, if_exists=if_exists) as writer:
        for start in starts:
            writer.write(_batch(start))
        return writer.commit(3 * len(starts))


def _expected_dicts(*starts: int) -> list[dict]:
    return [{"id": i, "prediction": i / 7, "label": f"r{i}"}
            for s in starts for i in range(s, s + 3)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_fail_replace_append(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scores{suffix}"
    assert _write_file(path, "fail", 0, 3) == 6
    assert _read_file(path) == _expected_dicts(0, 3)
    with pytest.raises(DataError, match="exists; pass if_exists='replace'"):
        FileWriter(path, arrow_schema=SCHEMA)
    assert _write_file(path, "replace", 10) == 3
    assert _read_file(path) == _expected_dicts(10)
    assert _write_file(path, "append", 20, 23) == 6
    assert _read_file(path) == _expected_dicts(10, 20, 23)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_abort_leaves_no_temp_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scores{suffix}"
    _write_file(path, "fail", 0)
    before = path.read_bytes()
    with pytest.raises(RuntimeError), \
            FileWriter(path, arrow_schema=SCHEMA, if_exists="append") as writer:
        writer.write(_batch(10))
        assert writer.temp_path.exists()
        raise RuntimeError("stop")
    assert not writer.temp_path.exists()
    writer = FileWriter(path, arrow_schema=SCHEMA, if_exists="replace")
    writer.write(_batch(10))
    with pytest.raises(DataError, match="5 rows expected, 3 written"):
        writer.commit(5)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_append_with_other_columns_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scores{suffix}"
    _write_file(path, "fail", 0)
    other = pa.schema([("id", pa.int64()), ("score", pa.float64())])
    with pytest.raises(DataError, match="cannot append"):
        FileWriter(path, arrow_schema=other, if_exists="append")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_file_format_from_suffix_or_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="file_format"):
        FileWriter(tmp_path / "scores.out", arrow_schema=SCHEMA)
    with FileWriter(tmp_path / "scores.out", arrow_schema=SCHEMA,
                    file_format="parquet") as writer:
        writer.write(_batch(0))
        writer.commit(3)
    assert pq.read_table(tmp_path / "scores.out").num_rows == 3
