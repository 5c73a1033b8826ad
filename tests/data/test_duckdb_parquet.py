"""DuckDB -> Parquet through DuckDB's own writer reads back as pyarrow's file did.

``DbConnection.export(..., "parquet")`` on DuckDB writes with DuckDB's parallel Parquet
writer (``DuckDBDialect.write_parquet``) when every column's type reads back the same,
and from Arrow batches through pyarrow otherwise.  Each file here is compared with the
one pyarrow's writer makes from the same rows (``write_batches``, the path every other
engine takes), on real DuckDB files; ``created_by`` in the footer shows which writer
wrote it, so a test fails if the expected path is not taken.
"""

from __future__ import annotations

import ctypes
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _cli import invoke

from fedsage.data import DbConnection
from fedsage.data.dialects.duckdb import PARQUET_SAME_TYPES
from fedsage.data.export import write_batches

ROOT = Path(__file__).resolve().parents[2]

# One column per type DuckDB's writer takes (PARQUET_SAME_TYPES), with edge values and
# NULLs.  Rows: a typical row, extremes, a row of NULLs.
COLUMNS = {
    "B": ("BOOLEAN", ["true", "false", "NULL"]),
    "I1": ("TINYINT", ["-5", "-128", "NULL"]),
    "I2": ("SMALLINT", ["300", "32767", "NULL"]),
    "I4": ("INTEGER", ["7", "-2147483648", "NULL"]),
    "I8": ("BIGINT", ["9000000000", "9223372036854775807", "NULL"]),
    "U1": ("UTINYINT", ["200", "255", "NULL"]),
    "U2": ("USMALLINT", ["60000", "0", "NULL"]),
    "U4": ("UINTEGER", ["4000000000", "1", "NULL"]),
    "U8": ("UBIGINT", ["18000000000000000000", "18446744073709551615", "NULL"]),
    "F4": ("FLOAT", ["1.5", "'-inf'", "NULL"]),
    "F8": ("DOUBLE", ["2.25", "'nan'", "NULL"]),
    "D1": ("DECIMAL(4,1)", ["123.4", "-999.9", "NULL"]),
    "D9": ("DECIMAL(9,2)", ["1234567.89", "-0.01", "NULL"]),
    "D18": ("DECIMAL(18,3)", ["123456789012345.678", "0", "NULL"]),
    "D38": ("DECIMAL(38,10)", ["1234567890123456789012345678.0123456789", "-1", "NULL"]),
    "S": ("VARCHAR", ["'héllo, \"world\"'", "''", "NULL"]),
    "BL": ("BLOB", ["'\\x00\\xFF'::BLOB", "''::BLOB", "NULL"]),
    "DT": ("DATE", ["DATE '2024-02-29'", "DATE '1900-01-01'", "NULL"]),
    "TM": ("TIME", ["TIME '12:34:56.789'", "TIME '00:00:00'", "NULL"]),
    "TS": ("TIMESTAMP", ["TIMESTAMP '2024-01-01 01:02:03.456789'",
                         "TIMESTAMP '1960-06-30 23:59:59.000001'", "NULL"]),
    "TS_MS": ("TIMESTAMP_MS", ["TIMESTAMP '2024-01-01 01:02:03.456'",
                               "TIMESTAMP '1969-12-31 23:59:59.999'", "NULL"]),
    "TS_NS": ("TIMESTAMP_NS", ["TIMESTAMP_NS '2024-01-01 01:02:03.456789123'",
                               "TIMESTAMP_NS '1970-01-01 00:00:00'", "NULL"]),
    "Mixed Case, space": ("INTEGER", ["1", "2", "3"]),
}

# Types DuckDB's writer stores otherwise: these go through pyarrow's writer.
FALLBACK = {
    "hugeint": "SELECT 170141183460469231731687303715884105727::HUGEINT AS h",
    "uhugeint": "SELECT 1::UHUGEINT AS h",
    "timestamptz": "SELECT TIMESTAMPTZ '2024-01-01 01:02:03+02' AS t",
    "timetz": "SELECT TIMETZ '01:02:03+02' AS t",
    "timestamp_s": "SELECT TIMESTAMP_S '2024-01-01 01:02:03' AS t",
    "enum": "SELECT 'b'::ENUM('a', 'b') AS e",
    "uuid": "SELECT 'e2b8c1a0-0000-4000-8000-000000000001'::UUID AS u",
    "json": "SELECT '{\"a\": 1}'::JSON AS j",
    "bit": "SELECT '1010'::BIT AS b",
    "list": "SELECT [1, NULL, 3] AS l",
    "struct": "SELECT {'a': 1, 'b': 'x'} AS s",
    "null": "SELECT NULL AS n",
    "duplicate names": "SELECT 1 AS a, 2 AS a",
    "names differing in case": "SELECT 1 AS a, 2 AS \"A\"",
    "one column of many": "SELECT 1 AS i, 'x' AS s, 1::HUGEINT AS h",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DbConnection]:
    path = tmp_path / "types.duckdb"
    with duckdb.connect(str(path)) as con:
        ddl = ", ".join(f"{_quote(n)} {t}" for n, (t, _v) in COLUMNS.items())
        con.execute(f"CREATE TABLE every_type ({ddl})")
        for row in range(3):
            values = ", ".join(f"CAST({v[row]} AS {t})" for t, v in COLUMNS.values())
            con.execute(f"INSERT INTO every_type VALUES ({values})")
        con.execute("CREATE TABLE numbers AS SELECT i, 'x' || i AS s FROM range(300000) t(i)")
    with DbConnection.from_url(f"duckdb:///{path}") as db:
        yield db


def _pyarrow_file(db: DbConnection, source: object, path: Path) -> Path:
    """The file pyarrow's writer makes from the same rows (the path before DuckDB's)."""
    write_batches(db.iter_batches(source), path, "parquet")  # type: ignore[arg-type]
    return path


def _writer(path: Path) -> str:
    return str(pq.read_metadata(path).created_by)


def _assert_reads_back_the_same(native: Path, arrow: Path) -> None:
    mine, theirs = pq.read_table(native), pq.read_table(arrow)
    assert mine.column_names == theirs.column_names
    assert mine.schema.types == theirs.schema.types  # tz, unit, precision included
    assert _values(mine) == _values(theirs)
    pd.testing.assert_frame_equal(pd.read_parquet(native), pd.read_parquet(arrow))


def _values(table: pa.Table) -> list[list[object]]:
    """Every value by column, NaN spelled out (NaN != NaN would hide equal files)."""
    return [["NaN" if isinstance(v, float) and math.isnan(v) else v
             for v in column.to_pylist()] for column in table.columns]


def test_the_table_of_every_type_reads_back_as_pyarrows(duck: DbConnection,
                                                       tmp_path: Path) -> None:
    assert {t.split("(")[0].lower() for t, _v in COLUMNS.values()} == PARQUET_SAME_TYPES
    seen: list[int] = []
    out = tmp_path / "native.parquet"
    assert duck.export("every_type", out, "parquet", progress=seen.append) == 3
    assert seen == [3]
    assert _writer(out).startswith("DuckDB")
    arrow = _pyarrow_file(duck, "every_type", tmp_path / "arrow.parquet")
    assert _writer(arrow).startswith("parquet-cpp-arrow")
    _assert_reads_back_the_same(out, arrow)
    back = pq.read_table(out)
    assert back.column("TS").type == pa.timestamp("us")  # naive, as DuckDB's TIMESTAMP
    assert back.column("D18").type == pa.decimal128(18, 3)
    assert back.column("S").to_pylist() == ['héllo, "world"', "", None]
    assert back.column("B").to_pylist() == [True, False, None]
    assert back.num_rows == 3 and all(back.column(n)[2].as_py() is None
                                      for n in back.column_names if n != "Mixed Case, space")


def test_a_query_with_parameters_and_order(duck: DbConnection, tmp_path: Path) -> None:
    query = duck.query("SELECT i, s FROM numbers WHERE i % ? = 0 ORDER BY i DESC", [7])
    out = tmp_path / "q.parquet"
    assert query.export_channel(out, "parquet") == 42858
    assert _writer(out).startswith("DuckDB")
    _assert_reads_back_the_same(out, _pyarrow_file(duck, query, tmp_path / "a.parquet"))
    assert pq.read_table(out).column("i").to_pylist()[:3] == [299999, 299992, 299985]


def test_an_empty_result_keeps_its_schema(duck: DbConnection, tmp_path: Path) -> None:
    query = duck.query("SELECT * FROM every_type WHERE I4 > 2147483000")
    out = tmp_path / "empty.parquet"
    assert duck.export(query, out, "parquet") == 0
    assert _writer(out).startswith("DuckDB")
    _assert_reads_back_the_same(out, _pyarrow_file(duck, query, tmp_path / "a.parquet"))


@pytest.mark.parametrize("sql", FALLBACK.values(), ids=FALLBACK.keys())
def test_types_duckdb_writes_otherwise_go_through_pyarrow(duck: DbConnection, tmp_path: Path,
                                                         sql: str) -> None:
    out = tmp_path / "f.parquet"
    assert duck.export(sql, out, "parquet") == 1
    assert _writer(out).startswith("parquet-cpp-arrow")
    arrow = _pyarrow_file(duck, sql, tmp_path / "a.parquet")
    # ParquetFile: read_table refuses duplicate names, which the file keeps as before.
    assert pq.ParquetFile(out).read().equals(pq.ParquetFile(arrow).read())


@pytest.mark.parametrize("sql", ["SELECT 1::HUGEINT AS h", "SELECT TIMESTAMPTZ "
                                 "'2024-01-01 01:02:03+02' AS t", "SELECT 1 AS a, 2 AS A"])
def test_duckdbs_own_file_would_differ_for_the_fallback_types(duck: DbConnection,
                                                              tmp_path: Path, sql: str) -> None:
    """Why they are left out: DuckDB's file of these reads back otherwise."""
    raw = tmp_path / "raw.parquet"
    duckdb.connect().sql(sql).write_parquet(str(raw))
    arrow = _pyarrow_file(duck, sql, tmp_path / "a.parquet")
    mine, theirs = pq.read_table(raw), pq.read_table(arrow)
    assert (mine.column_names, mine.schema.types) != (theirs.column_names, theirs.schema.types)


def test_file_names_with_glob_characters(duck: DbConnection, tmp_path: Path) -> None:
    folder = tmp_path / "runs[1]*"
    (tmp_path / "runs1x").mkdir()  # what the pattern would match, were it one
    out = folder / "train?.parquet"
    assert duck.export("numbers", out, "parquet") == 300000
    assert pq.read_metadata(out).num_rows == 300000
    assert sorted(p.name for p in folder.iterdir()) == ["train?.parquet"]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("types.duckdb", "home")
                  and not p.name.startswith("types.duckdb"))


@pytest.mark.parametrize(("sql", "words"), [
    ("SELECT CAST('x' || i AS INTEGER) AS n FROM range(300000) t(i)",
     ["writing the Parquet file failed", "Conversion Error"]),
    ("SELECT * FROM no_such_table", ["running the query failed", "no_such_table"]),
    ("SELECT FROM WHERE", ["syntax error"]),
    ("DELETE FROM numbers", ["read-only"]),
], ids=["fails while writing", "unknown table", "bad SQL", "a write"])
def test_a_failing_query_leaves_no_file(duck: DbConnection, tmp_path: Path, sql: str,
                                        words: list[str]) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(Exception) as info:
        duck.export(sql, out, "parquet")
    assert type(info.value).__name__ == "DataError"
    for word in words:
        assert word.lower() in str(info.value).lower()
    assert _leftovers(tmp_path) == []
    # The previous file stays as it was.
    out.write_bytes(b"yesterday's channel")
    with pytest.raises(Exception, match="(?i)" + words[0]):
        duck.export(sql, out, "parquet")
    assert out.read_bytes() == b"yesterday's channel"
    assert _leftovers(tmp_path) == ["out.parquet"]
    # The connection still works.
    assert duck.export("numbers", out, "parquet") == 300000


def test_an_unwritable_path_fails_as_before(duck: DbConnection, tmp_path: Path) -> None:
    (tmp_path / "a file").write_text("not a folder")
    for source in ("every_type", "SELECT 1::HUGEINT AS h"):  # DuckDB's writer and pyarrow's
        with pytest.raises(OSError):
            duck.export(source, tmp_path / "a file" / "out.parquet", "parquet")
    # A folder where the file should go: the rename fails, nothing is left beside it.
    (tmp_path / "taken.parquet").mkdir()
    with pytest.raises(IsADirectoryError):
        duck.export("every_type", tmp_path / "taken.parquet", "parquet")
    assert _leftovers(tmp_path) == ["a file", "taken.parquet"]
    assert list((tmp_path / "taken.parquet").iterdir()) == []


def test_the_file_is_private(duck: DbConnection, tmp_path: Path) -> None:
    out = tmp_path / "private.parquet"
    duck.export("numbers", out, "parquet")
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_cli_exports_parquet_and_reports_errors(duck: DbConnection, tmp_path: Path) -> None:
    _ENV = {"COLUMNS": "250"}
    url = f"duckdb:///{tmp_path / 'types.duckdb'}"
    duck.close()
    out = tmp_path / "cli.parquet"
    result = invoke(["data", "export", "numbers", "--to", str(out), "--format", "parquet",
                                 "--config", url], env=_ENV)
    assert result.exit_code == 0, result.output
    assert "300,000 rows" in result.output
    assert _writer(out).startswith("DuckDB") and pq.read_metadata(out).num_rows == 300000
    result = invoke(["data", "export", "SELECT * FROM nope", "--to",
                                 str(tmp_path / "bad.parquet"), "--format", "parquet",
                                 "--config", url], env=_ENV)
    assert result.exit_code == 1 and "nope" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "bad.parquet").exists()


def test_a_duckdb_parquet_export_does_not_import_pyarrow(tmp_path: Path) -> None:
    """DuckDB writes the file itself: the export pays for no pyarrow import (~0.2 s)."""
    path = tmp_path / "light.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT i, 'x' || i AS s FROM range(1000) r(i)")
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from fedsage.data import DbConnection
        with DbConnection.from_url({"duckdb:///" + str(path)!r}) as db:
            rows = db.export("t", {str(tmp_path / "t.parquet")!r}, "parquet")
            rows += db.export("SELECT i FROM t WHERE i < 10", {str(tmp_path / "q.parquet")!r},
                              "parquet")
        print(json.dumps({{"rows": rows, "pyarrow": "pyarrow" in sys.modules}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"rows": 1010,
                                                                  "pyarrow": False}


def test_duckdbs_own_progress_bar_stays_off(tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """DuckDB draws a bar on stdout for statements over ``progress_bar_time`` (2 s)."""
    from fedsage.data.dialects.duckdb import DuckDBDialect, connect_duckdb

    def printed() -> str:
        ctypes.CDLL(None).fflush(None)  # DuckDB writes through C's buffered stdout
        return capfd.readouterr().out

    session = connect_duckdb(str(tmp_path / "bar.duckdb"))
    try:
        session.conn.execute("CREATE TABLE t AS SELECT i, 'x' || i AS s FROM range(2000000) r(i)")
        # Replayed on every cursor: draw after 0.1 s (hashing 2M rows takes longer).
        session.use = "SET progress_bar_time = 100"
        printed()
        rows = DuckDBDialect().write_parquet(session, "SELECT i, md5(s) AS h FROM t", None,
                                             tmp_path / "t.parquet", None)
        assert rows == 2000000
        assert printed() == ""
        check = session.cursor()  # the same write without switching the bar off draws it
        check.sql("SELECT i, md5(s) AS h FROM t").write_parquet(str(tmp_path / "with_bar.parquet"))
        check.close()
        assert "%" in printed()
    finally:
        session.close()
