"""fedml-aws's 14 methods on DuckDB, SQLite and PostgreSQL, with hostile names and values."""

from __future__ import annotations

import datetime

import pandas as pd
import pytest

from fedsage.data import DbConnection
from fedsage.errors import DataError

HOSTILE_TABLE = "x'; DROP TABLE victim; --"
HOSTILE_VALUES = ["'; DROP TABLE victim; --", 'say "hi"', "it's", "ünïcødé ☃", "%_\\"]
WEIRD_TABLES = [HOSTILE_TABLE, 'we"ird', "Ünï Tab", "50%_off %s"]


def _ddl(db: DbConnection, name: str, cols: str = "ID INTEGER, TXT VARCHAR(100)") -> str:
    return f"CREATE TABLE {db.dialect.qualified(name, db.write_schema)} ({cols})"


def _victim(db: DbConnection) -> None:
    db.create_table(_ddl(db, "victim"))


def _lower(names: object) -> list[str]:
    return [str(n).lower() for n in names]  # type: ignore[attr-defined]


def _names(db: DbConnection) -> set[str]:
    return {row[0] for row in db.get_user_tables()[0]}


@pytest.mark.parametrize("name", WEIRD_TABLES)
def test_table_lifecycle_with_hostile_names_and_values(db: DbConnection, name: str) -> None:
    _victim(db)
    db.create_table(_ddl(db, name))
    frame = pd.DataFrame({"ID": range(len(HOSTILE_VALUES)), "TXT": HOSTILE_VALUES})
    db.insert_into_table(name, frame)

    assert _names(db) == {"victim", name}
    assert db.get_table_size(name) == [(len(HOSTILE_VALUES),)]
    rows, headers = db.get_data_with_headers(name)
    assert _lower(headers) == ["id", "txt", "inserted_at"]
    assert [r[1] for r in sorted(rows)] == HOSTILE_VALUES
    assert all(isinstance(r[2], (datetime.datetime, str)) for r in rows)

    rows, headers = db.get_table_metadata(name)
    assert headers[:3] == ["POSITION", "COLUMN_NAME", "DATA_TYPE_NAME"]
    assert _lower(r[1] for r in rows) == ["id", "txt", "inserted_at"]

    db.update_table(name, "TXT = 'changed'", "ID = 0")
    db.delete_from_table(name, "ID = 1")
    rows, _ = db.execute_query(f"SELECT TXT FROM {db.dialect.qualified(name, db.schema)}")
    assert sorted(r[0] for r in rows) == sorted(["changed", *HOSTILE_VALUES[2:]])

    add = "ADD (NOTE VARCHAR(10))" if db.dialect.name == "hana" else "ADD COLUMN NOTE VARCHAR(10)"
    db.alter_table(name, add)
    assert _lower(r[1] for r in db.get_table_metadata(name)[0])[-1] == "note"

    db.drop_table(name)
    assert _names(db) == {"victim"}
    assert db.get_table_size("victim") == [(0,)]


def test_get_data_with_headers_size_is_a_fraction(db: DbConnection) -> None:
    db.create_table(_ddl(db, "t"))
    db.insert_into_table("t", pd.DataFrame({"ID": range(10), "TXT": list("abcdefghij")}))
    rows, _ = db.get_data_with_headers("t", size=0.3)
    assert len(rows) == 3
    with pytest.raises(DataError, match="size"):
        db.get_data_with_headers("t", size=0)


def test_views_listing_metadata_and_search(db: DbConnection) -> None:
    db.create_table(_ddl(db, "base"))
    target = db.dialect.qualified
    for view in ["V_SALES", "v_sales_eu", "100%_view", "other"]:
        db._run(f"CREATE VIEW {target(view, db.write_schema)} AS SELECT * FROM "
                f"{target('base', db.write_schema)}", "setup", fetch=False)
    rows, headers = db.get_schema_views()
    assert headers == ["VIEW_NAME", "VIEW_TYPE"]
    assert sorted(r[0] for r in rows) == sorted(["V_SALES", "v_sales_eu", "100%_view", "other"])
    found = db.get_view_by_name("SALES")[0]
    assert sorted(r[0] for r in found) == ["V_SALES", "v_sales_eu"]
    # % and _ are literal characters, not wildcards; hostile text is just a value.
    assert [r[0] for r in db.get_view_by_name("0%_")[0]] == ["100%_view"]
    assert db.get_view_by_name("'; DROP TABLE base; --")[0] == []
    rows, headers = db.get_view_metadata("V_SALES")
    assert _lower(r[1] for r in rows) == ["id", "txt", "inserted_at"]
    assert _names(db) == {"base"}


def test_execute_query_is_read_only(db: DbConnection) -> None:
    _victim(db)
    victim = db.dialect.qualified("victim", db.schema)
    for bad in [f"DELETE FROM {victim}", f"SELECT 1; DROP TABLE {victim}",
                f"DROP TABLE {victim}", f"  /* hi */ update {victim} set ID = 1"]:
        with pytest.raises(DataError, match="read-only"):
            db.execute_query(bad)
    rows, headers = db.execute_query(f"SELECT COUNT(*) AS n FROM {victim} -- ; DROP")
    assert rows == [(0,)] and [h.lower() for h in headers] == ["n"]
    assert _names(db) == {"victim"}


def test_queries_bind_parameters(db: DbConnection) -> None:
    db.create_table(_ddl(db, "t"))
    db.insert_into_table("t", pd.DataFrame({"ID": [1, 2], "TXT": HOSTILE_VALUES[:2]}))
    marker = "%s" if db.dialect.name == "postgresql" else "?"
    query = db.query(f'SELECT ID FROM {db.dialect.qualified("t", db.schema)} '
                     f"WHERE TXT = {marker}", [HOSTILE_VALUES[0]])
    assert query.to_arrow().column(0).to_pylist() == [1]
    # execute_query keeps fedml-aws's single argument.
    with pytest.raises(TypeError):
        db.execute_query("SELECT 1", [1])  # type: ignore[call-arg]


def test_clauses_cannot_smuggle_statements(db: DbConnection) -> None:
    _victim(db)
    for call in [lambda: db.delete_from_table("victim", "1=1; DROP TABLE victim"),
                 lambda: db.update_table("victim", "ID = 1; DROP TABLE victim", "1=1"),
                 lambda: db.alter_table("victim", "ADD COLUMN A INT; DROP TABLE victim")]:
        with pytest.raises(DataError, match="';'"):
            call()
    assert _names(db) == {"victim"}


def test_create_table_keeps_fedml_rules(db: DbConnection) -> None:
    with pytest.raises(DataError, match="INSERTED_AT"):
        db.create_table("CREATE TABLE t (ID INTEGER, INSERTED_AT TIMESTAMP)")
    with pytest.raises(DataError, match="CREATE TABLE"):
        db.create_table("DROP TABLE t")
    db.create_table("CREATE TABLE t (ID INTEGER);")
    assert _lower(r[1] for r in db.get_table_metadata("t")[0]) == ["id", "inserted_at"]


def test_insert_is_all_or_nothing_and_errors_raise(db: DbConnection) -> None:
    db.create_table(_ddl(db, "t", "ID INTEGER NOT NULL, TXT VARCHAR(100)"))
    with pytest.raises(DataError, match="inserting into 't'"):
        db.insert_into_table("t", pd.DataFrame({"ID": [1, None], "TXT": ["a", "b"]}))
    assert db.get_table_size("t") == [(0,)]
    with pytest.raises(DataError, match="INSERTED_AT"):
        db.insert_into_table("t", pd.DataFrame({"ID": [1], "INSERTED_AT": [1]}))
    with pytest.raises(DataError, match="DataFrame"):
        db.insert_into_table("t", [(1, "a")])
    with pytest.raises(DataError, match="missing"):
        db.get_table_size("missing")
    # the connection is still usable after failures
    db.insert_into_table("t", pd.DataFrame({"ID": [1], "TXT": ["a"]}))
    assert db.get_table_size("t") == [(1,)]


def test_bulk_insert_of_many_rows(db: DbConnection) -> None:
    db.create_table(_ddl(db, "big", "ID INTEGER, X DOUBLE PRECISION"))
    n = 25_000
    db.insert_into_table("big", pd.DataFrame({"ID": range(n), "X": [i / 2 for i in range(n)]}))
    assert db.get_table_size("big") == [(n,)]
    rows, _ = db.execute_query(f'SELECT SUM(X) FROM {db.dialect.qualified("big", db.schema)}')
    assert rows[0][0] == pytest.approx(sum(i / 2 for i in range(n)))


def test_closed_connection_refuses(db: DbConnection) -> None:
    db.close()
    db.close()
    with pytest.raises(DataError, match="closed"):
        db.get_user_tables()
