"""TableWriter and FileWriter: staging, one-transaction commit, nothing half written.

Every ``db`` test runs on a DuckDB file, a SQLite file and the suite's PostgreSQL.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _databases import pg_dsn

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


def _staging_left(db: DbConnection) -> list:
    """Staging tables any session can see (and this session's own temporary ones)."""
    sql = {
        "duckdb": "SELECT table_name FROM duckdb_tables()",
        "sqlite": "SELECT name FROM sqlite_master UNION ALL SELECT name FROM sqlite_temp_master",
        "postgresql": "SELECT relname FROM pg_class",
    }[db.dialect.name]
    return [r for r in db.execute_query(sql)[0] if "__fedsage_stage_" in r[0]]


def _write(db: DbConnection, if_exists: str, *starts: int, table: str = "SCORES") -> int:
    with TableWriter(db, table, arrow_schema=SCHEMA, if_exists=if_exists,
                     buffer_rows=1) as writer:
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


def test_target_created_by_someone_else_meanwhile_fails_the_commit(db: DbConnection) -> None:
    first = TableWriter(db, "SCORES", arrow_schema=SCHEMA, buffer_rows=1)
    first.write(_batch(0))
    assert _write(db, "fail", 10) == 3  # another writer creates the target first
    with pytest.raises(DataError, match="SCORES"):
        first.commit(3)
    assert repr(first).endswith("aborted>")
    assert _rows(db) == _expected(10)
    assert _staging_left(db) == []


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


@pytest.mark.parametrize("buffer_rows", [1, 4, 7, 262_144])
def test_batches_gathered_before_each_load(db: DbConnection, buffer_rows: int) -> None:
    with TableWriter(db, "SCORES", arrow_schema=SCHEMA, buffer_rows=buffer_rows) as writer:
        for start in range(0, 30, 3):
            writer.write(_batch(start))
        assert writer.rows_written == 30
        assert writer.commit(30) == 30
    assert _rows(db) == _expected(*range(0, 30, 3))


def test_buffer_sizes_are_checked(db: DbConnection) -> None:
    for bad in ({"buffer_rows": 0}, {"buffer_bytes": -1}, {"buffer_rows": 2.5}):
        with pytest.raises(ConfigurationError, match="parameter of TableWriter must be an int"):
            TableWriter(db, "SCORES", arrow_schema=SCHEMA, **bad)  # type: ignore[arg-type]
    assert _tables(db) == set()


def test_a_batch_that_does_not_fit_is_refused_before_the_database(db: DbConnection) -> None:
    with TableWriter(db, "SCORES", arrow_schema=SCHEMA, buffer_rows=1) as writer:
        writer.write(_batch(0))
        with pytest.raises(DataError, match="does not fit the writer's schema"):
            writer.write(pa.table({"id": ["x"], "prediction": [1.0], "label": ["a"]}))
        writer.write(_batch(3))  # the writer is still usable
        writer.commit(6)
    assert _rows(db) == _expected(0, 3)


def test_rows_the_database_refuses_abort_and_name_the_rows(pg_server, pg_schema: str) -> None:
    with DbConnection.from_url(pg_server.url, schema=pg_schema) as db:
        _write(db, "fail", 0)
        writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace",
                             buffer_rows=6)
        writer.write(_batch(10))
        writer.write(_batch(13))  # loaded: rows 0-5
        writer.write(_batch(16))
        bad = pa.table({"id": [19], "prediction": [0.5], "label": ["nul \x00 byte"]},
                       schema=SCHEMA)
        writer.write(bad)  # gathered, not loaded yet: 4 rows pending
        with pytest.raises(DataError, match=r"(?s)writing rows 6-9 to .*SCORES.* failed: "
                                            r".*0x00.*is untouched"):
            writer.commit(10)  # loads the rest first; PostgreSQL text cannot hold NUL
        assert repr(writer).endswith("aborted>")
        with pytest.raises(DataError, match="aborted"):
            writer.write(_batch(20))
        assert _rows(db) == _expected(0)
        assert _staging_left(db) == []


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
            TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace", buffer_rows=1) as writer:
        writer.write(_batch(10))
        writer.write(_batch(13))
        assert _rows(db) == _expected(0)  # nothing visible mid-write
        assert _tables(db) == {"SCORES"}
        raise RuntimeError("model failed on the third batch")
    assert _rows(db) == _expected(0)
    assert _tables(db) == {"SCORES"}
    assert _staging_left(db) == []


def test_failure_inside_the_commit_rolls_back(db: DbConnection) -> None:
    create = (f"CREATE TABLE {db.dialect.qualified('SCORES', db.write_schema)} "
              '("id" BIGINT, "prediction" DOUBLE PRECISION CHECK ("prediction" < 1), '
              '"label" TEXT)')
    db._run(create, "creating the target", fetch=False)
    _write(db, "append", 0)
    writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="append", buffer_rows=1)
    writer.write(_batch(5))  # 5/7, 6/7 and 7/7 = 1.0, which the CHECK refuses
    with pytest.raises(DataError, match=r"copying the staged rows into .*SCORES"):
        writer.commit(3)
    assert repr(writer).endswith("aborted>")
    assert _rows(db) == _expected(0)
    assert _staging_left(db) == []


def test_keyboard_interrupt_in_the_with_block(db: DbConnection) -> None:
    _write(db, "fail", 0)
    with pytest.raises(KeyboardInterrupt), \
            TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="append", buffer_rows=1) as writer:
        writer.write(_batch(10))
        raise KeyboardInterrupt
    assert writer.abort() is None  # idempotent
    assert _rows(db) == _expected(0)
    assert _staging_left(db) == []
    assert _tables(db) == {"SCORES"}


def test_wrong_expected_rows_leaves_target_untouched(db: DbConnection) -> None:
    _write(db, "fail", 0)
    writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace", buffer_rows=1)
    writer.write(_batch(10))
    with pytest.raises(DataError, match="4 rows expected, 3 staged"):
        writer.commit(expected_rows=4)
    assert _rows(db) == _expected(0)
    assert _staging_left(db) == []
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


def test_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    for if_exists in ("fail", "append"):
        with FileWriter(path, arrow_schema=SCHEMA, if_exists=if_exists,
                        header=False) as writer:
            writer.write(_batch(0))
            writer.commit(3)
    import pyarrow.csv as pacsv

    back = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=SCHEMA.names),
                          convert_options=pacsv.ConvertOptions(column_types=SCHEMA))
    assert back.to_pylist() == _expected_dicts(0, 0)
    assert not path.read_text().startswith('"id"')


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


def test_parquet_row_groups_follow_buffer_rows(tmp_path: Path) -> None:
    path = tmp_path / "scores.parquet"
    with FileWriter(path, arrow_schema=SCHEMA, buffer_rows=6) as writer:
        for start in range(0, 30, 3):
            writer.write(_batch(start))
        writer.commit(30)
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    assert _read_file(path) == _expected_dicts(*range(0, 30, 3))


def test_file_format_from_suffix_or_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="file_format"):
        FileWriter(tmp_path / "scores.out", arrow_schema=SCHEMA)
    with FileWriter(tmp_path / "scores.out", arrow_schema=SCHEMA,
                    file_format="parquet") as writer:
        writer.write(_batch(0))
        writer.commit(3)
    assert pq.read_table(tmp_path / "scores.out").num_rows == 3


# -- reading the input on the same connection while writing ---------------------------


def test_read_and_write_on_one_connection(db: DbConnection) -> None:
    _write(db, "fail", 0, 3, 6, 9, table="INPUT")
    with TableWriter(db, "SCORES", arrow_schema=SCHEMA, buffer_rows=5) as writer:
        for batch in db.iter_batches(db.table("INPUT"), batch_rows=4):
            writer.write(batch)
        writer.commit(12)
    assert _rows(db) == _rows(db, "INPUT")


def test_kept_columns_keep_their_types(db: DbConnection) -> None:
    import datetime
    import decimal

    schema = pa.schema([("id", pa.int32()), ("amount", pa.decimal128(12, 2)),
                        ("day", pa.date32()), ("at", pa.timestamp("us")),
                        ("flag", pa.bool_()), ("prediction", pa.float64()),
                        ("Raw Bytes", pa.binary())])
    data = pa.table({
        "id": [1, 2], "amount": [decimal.Decimal("12.34"), None],
        "day": [datetime.date(2024, 2, 29), None],
        "at": [datetime.datetime(2024, 2, 29, 13, 14, 15, 123456), None],
        "flag": [True, None], "prediction": [0.25, None],
        "Raw Bytes": [b"\x00\xff", None]}, schema=schema)
    with TableWriter(db, "SCORES", arrow_schema=schema) as writer:
        writer.write(data)
        writer.commit(2)
    raw, _ = db.execute_query('SELECT "Raw Bytes" FROM "SCORES" ORDER BY "id"')
    assert [None if v is None else bytes(v) for (v,) in raw] == [b"\x00\xff", None]
    back = db.to_arrow('SELECT * FROM "SCORES" ORDER BY "id"').drop_columns(["Raw Bytes"])
    back_rows = back.to_pylist()
    if db.dialect.name == "sqlite":  # no date, time or decimal types: ISO text, numbers
        assert back_rows == [{"id": 1, "amount": 12.34, "day": "2024-02-29",
                              "at": "2024-02-29 13:14:15.123456", "flag": 1,
                              "prediction": 0.25},
                             dict.fromkeys(back_rows[1], None) | {"id": 2}]
    else:
        assert back_rows == data.drop_columns(["Raw Bytes"]).to_pylist()


# -- a killed writer process, a lost connection ----------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from fedsage.data import DbConnection
    from fedsage.data.writer import TableWriter

    url, schema = sys.argv[1], sys.argv[2] or None
    db = DbConnection.from_url(url, schema=schema)
    s = pa.schema([("id", pa.int64()), ("prediction", pa.float64()), ("label", pa.string())])
    writer = TableWriter(db, "SCORES", arrow_schema=s, if_exists="replace", buffer_rows=1)
    for start in range(100, 400, 3):
        ids = list(range(start, start + 3))
        writer.write(pa.table({"id": ids, "prediction": [i / 7 for i in ids],
                               "label": [f"r{i}" for i in ids]}, schema=s))
    print(writer.staging, flush=True)
    sys.stdin.read()  # until killed
""")


def _kill_writer_process(tmp_path: Path, url: str, schema: str | None,
                         spool_dir: Path | None = None) -> str:
    """Run a writer in a real process, SIGKILL it mid-write; return its staging table.

    With ``spool_dir`` (``TMPDIR`` of the child): check that the child holds its
    staging file open there, with no name, before it is killed."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, TMPDIR=str(spool_dir)) if spool_dir else None
    child = subprocess.Popen([sys.executable, str(script), url, schema or ""],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        staging = child.stdout.readline().strip() if child.stdout else ""
        assert "__fedsage_stage_" in staging, child.stderr.read() if child.stderr else ""
        if spool_dir is not None:
            fds = Path(f"/proc/{child.pid}/fd")
            opened = [os.readlink(fd) for fd in fds.iterdir()]
            assert [f for f in opened if f.startswith(str(spool_dir))], opened
            assert list(spool_dir.iterdir()) == []  # open, but without a name
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    return staging


def test_sigkilled_writer_process_duckdb(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'killed.duckdb'}"
    with DbConnection.from_url(url) as db:
        _write(db, "fail", 0)
    # The writer process holds DuckDB's file lock: this process lets go while it runs.
    spool = tmp_path / "spool"
    spool.mkdir()
    staging = _kill_writer_process(tmp_path, url, None, spool)
    with DbConnection.from_url(url) as db:
        assert _rows(db) == _expected(0)
        every, _ = db.execute_query("SELECT database_name, table_name FROM duckdb_tables()")
        assert every == [(tmp_path.joinpath("killed").name, "SCORES")], staging
    assert list(spool.iterdir()) == []  # the staging file went with the process


def test_duckdb_stages_outside_its_memory(tmp_path: Path) -> None:
    """DuckDB runs in this process: staged rows go to a file, not to a table in its
    buffer pool (where they would stay until the commit)."""
    schema = pa.schema([("id", pa.int64()), ("prediction", pa.float64())])
    ids = pa.array(range(300_000), pa.int64())
    data = pa.table({"id": ids, "prediction": ids.cast(pa.float64())}, schema=schema)
    with DbConnection.from_url(f"duckdb:///{tmp_path / 'm.duckdb'}") as db:
        with TableWriter(db, "SCORES", arrow_schema=schema, buffer_rows=50_000) as writer:
            writer.write(data)
            writer.write(data)
            held, _ = db.execute_query(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                "WHERE tag IN ('IN_MEMORY_TABLE', 'OVERFLOW_STRINGS')")
            assert all(used == 0 for _, used in held), held
            temporary, _ = db.execute_query("SELECT table_name FROM duckdb_tables() "
                                            "WHERE temporary")
            assert temporary == []
            assert writer.commit(600_000) == 600_000
        rows, _ = db.execute_query('SELECT count(*), sum("id") FROM "SCORES"')
        assert rows == [(600_000, 2 * sum(range(300_000)))]


def _pg_leftovers(dsn: str) -> tuple[list, list]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        writers = conn.execute("SELECT pid FROM pg_stat_activity "
                               "WHERE application_name = 'fedsage writer'").fetchall()
        stages = conn.execute("SELECT relname FROM pg_class "
                              "WHERE relname LIKE '%%fedsage_stage%%'").fetchall()
    return writers, stages


def _wait_for_backends_to_end(dsn: str) -> tuple[list, list]:
    """The server ends a killed client's backend when it reads the closed socket."""
    deadline = time.monotonic() + 60
    while True:
        writers, stages = _pg_leftovers(dsn)
        if not writers or time.monotonic() > deadline:
            return writers, stages
        time.sleep(0.1)


def test_sigkilled_writer_process_postgresql(tmp_path: Path, pg_server, pg_schema: str) -> None:
    with DbConnection.from_url(pg_server.url, schema=pg_schema) as db:
        _write(db, "fail", 0)
        _kill_writer_process(tmp_path, pg_server.url, pg_schema)
        assert _wait_for_backends_to_end(pg_dsn(pg_server)) == ([], [])
        assert _rows(db) == _expected(0)
        assert _tables(db) == {"SCORES"}


def test_postgresql_connection_killed_mid_write(pg_server, pg_schema: str) -> None:
    import psycopg

    dsn = pg_dsn(pg_server)
    with DbConnection.from_url(pg_server.url, schema=pg_schema) as db:
        _write(db, "fail", 0)
        writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="replace", buffer_rows=1)
        writer.write(_batch(10))
        writer.write(_batch(13))
        with psycopg.connect(dsn, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'fedsage writer'").fetchall()
        assert killed == [(True,)]
        with pytest.raises(DataError, match=r"(?s)writing rows 6-8 to .*SCORES.* failed: "
                                            r"postgresql: .*terminat.*connection was lost.*is untouched"):
            writer.write(_batch(16))
        writer.abort()  # never raises on a dead connection
        writer.abort()
        assert _wait_for_backends_to_end(dsn) == ([], [])
        assert _rows(db) == _expected(0)
        assert _tables(db) == {"SCORES"}


def test_postgresql_connection_killed_before_commit(pg_server, pg_schema: str) -> None:
    import psycopg

    dsn = pg_dsn(pg_server)
    with DbConnection.from_url(pg_server.url, schema=pg_schema) as db:
        _write(db, "fail", 0)
        writer = TableWriter(db, "SCORES", arrow_schema=SCHEMA, if_exists="append", buffer_rows=1)
        writer.write(_batch(10))
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'fedsage writer'")
        with pytest.raises(DataError, match="postgresql: counting the staged rows failed"):
            writer.commit(3)
        assert repr(writer).endswith("aborted>")
        assert _rows(db) == _expected(0)


# -- SAP HANA: no server here; the statements sqlalchemy-hana compiles ------------------


def test_hana_writer_statements() -> None:
    from fedsage.data.dialects.hana import HanaDialect

    hana = HanaDialect()
    assert hana.staging == "table"
    columns = [(f.name, hana.arrow_sql_type(f.type, f.name)) for f in pa.schema(
        [("id", pa.int64()), ("p", pa.float64()), ('a "b"', pa.string()),
         ("at", pa.timestamp("us"))])]
    sql, _ = hana.compile(hana.staging_table("S__fedsage_stage_1", "ME", columns))
    assert " ".join(sql.split()) == ('CREATE TABLE "ME"."S__fedsage_stage_1" ( "id" BIGINT, '
                                     '"p" DOUBLE, "a ""b""" NVARCHAR(5000), "at" TIMESTAMP )')
    sql, _ = hana.compile(hana.insert_select("S", "ME", "S__fedsage_stage_1", "ME",
                                             ["id", 'a "b"']))
    assert " ".join(sql.split()) == (
        'INSERT INTO "ME"."S" ("id", "a ""b""") SELECT "ME"."S__fedsage_stage_1"."id", '
        '"ME"."S__fedsage_stage_1"."a ""b""" FROM "ME"."S__fedsage_stage_1"')
    assert hana.rename_table("x", "ME", "S") == 'RENAME TABLE "ME"."x" TO "S"'
