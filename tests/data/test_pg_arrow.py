"""PostgreSQL to Arrow on both paths: ADBC (binary COPY) and the CSV ``COPY`` fallback.

Every test runs on each path, and each path is forced (the other one raises), so a
test passing on "adbc" proves the ADBC reader produced the rows.  Both must give the
same schema and the same values as psycopg's row-by-row ``fetchall`` (the slow path).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _pgserver import PostgresServer

from fedsage.data import DbConnection
from fedsage.data.dialects import _pg_adbc
from fedsage.data.dialects import postgresql as pgmod
from fedsage.errors import DataError

HOSTILE = "'; DROP TABLE victim; --"
TEXTS = ["a,b", 'q"uote', "line\nbreak\r\n", "", None, "ünï ☃ 😀", "tab\there", "\\N", HOSTILE]

DDL = """CREATE TABLE "types" (
    id int8, i2 int2, i4 int4, f4 float4, f8 float8, n2 numeric(10, 2), n numeric,
    b boolean, s text, v varchar(40), c char(3), d date, ts timestamp, tz timestamptz,
    j json, u uuid, iv interval, o oid, nm name)"""


def _row(k: int, text: str | None) -> tuple[Any, ...]:
    if k == 4:  # one row of NULLs (but the key)
        return (k,) + (None,) * 18
    return (k, k - 4, -2**31 + k, k / 8, k * 1.1e-3, decimal.Decimal(f"{k}.25"),
            decimal.Decimal("12345.678901234") * k, k % 2 == 0, text, text and text[:40],
            "ab", datetime.date(2024, 2, 29) + datetime.timedelta(days=k),
            datetime.datetime(2024, 1, 1, 12, 30, 45, 123456) + datetime.timedelta(hours=k),
            datetime.datetime(2024, 6, 1, 8, tzinfo=datetime.timezone.utc),
            '{"k": [1, "x"]}', f"00000000-0000-0000-0000-00000000000{k % 10}",
            datetime.timedelta(days=k, seconds=5), 4_000_000_000 + k, f"n{k}")


ROWS = [_row(k, t) for k, t in enumerate(TEXTS)]


@pytest.fixture(params=["adbc", "copy-csv"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    def refuse(*args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        raise AssertionError("the other path ran")

    if request.param == "adbc":
        if not _pg_adbc.adbc_available():
            pytest.skip("adbc-driver-postgresql is not installed")
        monkeypatch.setattr(pgmod.PostgreSQLDialect, "_iter_copy_csv", refuse)
    else:
        monkeypatch.setattr(pgmod, "adbc_available", lambda: False)
        monkeypatch.setattr(pgmod.PostgreSQLDialect, "_iter_adbc", refuse)
    return str(request.param)


@pytest.fixture
def pg(pg_server: PostgresServer, pg_schema: str, path: str) -> Iterator[DbConnection]:
    db = DbConnection.from_url(pg_server.url, schema=pg_schema)
    cols = ", ".join(["%s"] * 19)
    with db._conn.cursor() as cur:
        cur.execute(DDL)
        cur.executemany(f'INSERT INTO "types" VALUES ({cols})', ROWS)
        cur.execute("CREATE TABLE victim (x int)")
        cur.execute('CREATE SEQUENCE "seq"')
    db._conn.commit()
    try:
        yield db
    finally:
        db.close()


def _slow(db: DbConnection, sql: str) -> list[tuple[Any, ...]]:
    with db._conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    db._conn.commit()
    return rows


COLUMNS = ("id, i2, i4, f4, f8, n2, n, b, s, v, c, d, ts, tz, j::text, u::text, iv::text, "
           "o, nm")


def test_types_round_trip_like_the_slow_path(pg: DbConnection) -> None:
    table = pg.to_arrow('SELECT * FROM "types" ORDER BY id')
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(), "i2": pa.int16(), "i4": pa.int32(), "f4": pa.float32(),
        "f8": pa.float64(), "n2": pa.decimal128(10, 2), "n": pa.float64(), "b": pa.bool_(),
        "s": pa.string(), "v": pa.string(), "c": pa.string(), "d": pa.date32(),
        "ts": pa.timestamp("us"), "tz": pa.timestamp("us", tz="UTC"), "j": pa.string(),
        "u": pa.string(), "iv": pa.string(), "o": pa.int64(), "nm": pa.string()}
    got = [tuple(r.values()) for r in table.to_pylist()]
    expected = _slow(pg, f'SELECT {COLUMNS} FROM "types" ORDER BY id')
    assert len(got) == len(expected) == len(ROWS)
    for mine, slow in zip(got, expected, strict=True):
        slow = list(slow)
        slow[6] = None if slow[6] is None else float(slow[6])  # unconstrained NUMERIC
        assert list(mine) == slow
    assert table.column("s").to_pylist() == TEXTS  # NULL stays NULL, '' stays ''
    assert table.column("o").to_pylist()[0] == 4_000_000_000  # OIDs are unsigned


def test_parquet_channel_same_rows(pg: DbConnection, tmp_path: Path) -> None:
    assert pg.export("types", tmp_path / "t.parquet", "parquet") == len(ROWS)
    back = pq.read_table(tmp_path / "t.parquet").sort_by("id")
    assert back.equals(pg.to_arrow('SELECT * FROM "types" ORDER BY id'))
    assert back.column("s").to_pylist() == TEXTS


def test_parameters_are_quoted_never_injected(pg: DbConnection) -> None:
    one = pg.query('SELECT id, s FROM "types" WHERE s = %s OR v = %s ORDER BY id',
                   [HOSTILE, 'q"uote'])
    assert pg.to_arrow(one).to_pylist() == [{"id": 1, "s": 'q"uote'}, {"id": 8, "s": HOSTILE}]
    named = pg.query('SELECT count(*) AS n FROM "types" WHERE s LIKE %(p)s AND id > %(k)s',
                     {"p": "%'%", "k": 0})
    assert pg.to_arrow(named).column("n").to_pylist() == [1]
    assert pg.get_table_size("victim") == [(0,)]


def test_repeated_names_and_unqualified_tables(pg: DbConnection) -> None:
    # Unqualified: the second session must get the connection's search_path.
    table = pg.to_arrow('SELECT id AS a, s AS a, 1.5::float8 AS "we""ird" FROM "types" '
                        "ORDER BY id LIMIT 2")
    assert table.column_names == ["a", "a", 'we"ird']
    assert table.to_pylist()[1] == {"a": 'q"uote', 'we"ird': 1.5}


def test_many_rows_in_bounded_batches(pg: DbConnection) -> None:
    sql = ("SELECT g AS k, g * 0.5::float8 AS x, 's' || g AS s, NULLIF(g % 7, 0) AS m "
           "FROM generate_series(1, 200000) g")
    batches = list(pg.iter_batches(pg.query(sql), batch_rows=50_000))
    assert all(0 < b.num_rows <= 50_000 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 200_000
    assert pa.compute.sum(table.column("k")).as_py() == 200_000 * 200_001 // 2
    assert table.column("m").null_count == 200_000 // 7
    assert table.column("s")[199_999].as_py() == "s200000"


def test_errors_mid_stream_and_read_only(pg: DbConnection) -> None:
    with pytest.raises(DataError, match="division by zero") as info:
        pg.to_arrow(pg.query('SELECT id / (id - %s) FROM "types"', [5]))
    message = str(info.value)
    assert "%s" in message and "Query was" not in message and "LINE" not in message
    with pytest.raises(DataError, match="read-only"):
        pg.to_arrow("SELECT nextval('seq') AS v")
    # The connection is still usable.
    assert pg.get_table_size("types") == [(len(ROWS),)]
