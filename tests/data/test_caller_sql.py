"""Caller SQL stays one read-only statement, enforced by the engine, not only by a lexer.

The attacks below fooled fedsage's text guard (which knew neither PostgreSQL's
dollar-quoted strings nor the parenthesis that ``COPY (...)`` puts around the query) or
found a path without a read-only guard (SQLite streaming).  Each one must leave the
``victim`` table and the file system untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from _databases import pg_dsn

from fedsage.data import DbConnection
from fedsage.errors import DataError

DOLLAR_SMUGGLE = "SELECT $$'$$; COMMIT; DELETE FROM {victim}; SELECT '1'"
E_STRING_SMUGGLE = "SELECT E'\\''; COMMIT; DELETE FROM {victim}; SELECT ''"
COPY_BREAKOUT = "SELECT 1) TO PROGRAM 'touch {target}' --"
COPY_FILE_BREAKOUT = "SELECT 1) TO '{target}' --"


@pytest.fixture
def drop_dir() -> Iterator[Path]:
    """A folder the PostgreSQL server (as ``postgres`` when the tests run as root) can write."""
    folder = Path(tempfile.mkdtemp(prefix="fedsage-attack-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.fixture
def pg(pg_server: object, pg_schema: str) -> Iterator[DbConnection]:
    conn = DbConnection.from_url(pg_server.url, schema=pg_schema)  # type: ignore[attr-defined]
    try:
        _make_victim(conn)
        yield conn
    finally:
        conn.close()


def _make_victim(db: DbConnection) -> str:
    db.create_table(f"CREATE TABLE {db.dialect.qualified('victim', db.write_schema)} "
                    "(ID INTEGER)")
    db.insert_into_table("victim", pd.DataFrame({"ID": [1, 2, 3]}))
    return db.dialect.qualified("victim", db.schema)


# Every public way to read caller SQL.
_READS: list[Callable[[DbConnection, str, Path], object]] = [
    lambda db, sql, _tmp: db.execute_query(sql),
    lambda db, sql, _tmp: db.to_arrow(sql),
    lambda db, sql, _tmp: list(db.iter_batches(sql)),
    lambda db, sql, tmp: db.export(sql, tmp / "out.csv"),
    lambda db, sql, tmp: db.export(sql, tmp / "out.parquet", "parquet"),
    lambda db, sql, tmp: db.query(sql).export_channel(tmp / "out.csv"),
]


def _victim_rows(pg_server: object, schema: str) -> int:
    with psycopg.connect(pg_dsn(pg_server), autocommit=True) as conn:  # type: ignore[arg-type]
        row = conn.execute(f'SELECT COUNT(*) FROM "{schema}".victim').fetchone()
    assert row is not None
    return int(row[0])


# -- PostgreSQL: through the public API ------------------------------------------------


@pytest.mark.parametrize("attack", [DOLLAR_SMUGGLE, E_STRING_SMUGGLE])
def test_postgresql_execute_query_runs_one_statement(pg: DbConnection, pg_server: object,
                                                     pg_schema: str, attack: str) -> None:
    victim = pg.dialect.qualified("victim", pg.schema)
    with pytest.raises(DataError):
        pg.execute_query(attack.format(victim=victim))
    assert _victim_rows(pg_server, pg_schema) == 3
    # The connection stays usable and the table readable.
    assert pg.execute_query(f"SELECT COUNT(*) FROM {victim}")[0] == [(3,)]


@pytest.mark.parametrize("attack", [DOLLAR_SMUGGLE, E_STRING_SMUGGLE])
@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_postgresql_export_runs_one_statement(pg: DbConnection, pg_server: object,
                                              pg_schema: str, attack: str, file_format: str,
                                              tmp_path: Path) -> None:
    victim = pg.dialect.qualified("victim", pg.schema)
    with pytest.raises(DataError):
        pg.export(attack.format(victim=victim), tmp_path / f"out.{file_format}", file_format)
    assert _victim_rows(pg_server, pg_schema) == 3
    assert not (tmp_path / f"out.{file_format}").exists()


@pytest.mark.parametrize("attack", [COPY_BREAKOUT, COPY_FILE_BREAKOUT])
def test_postgresql_export_cannot_close_the_copy_parenthesis(pg: DbConnection, drop_dir: Path,
                                                             tmp_path: Path,
                                                             attack: str) -> None:
    target = drop_dir / "pwned"
    sql = attack.format(target=target)
    for run in (lambda: pg.export(sql, tmp_path / "out.csv"),
                lambda: pg.export(pg.query(sql), tmp_path / "out.csv"),
                lambda: pg.to_arrow(sql),
                lambda: pg.execute_query(sql)):
        with pytest.raises(DataError):
            run()
        assert not target.exists()
    assert not (tmp_path / "out.csv").exists()


def test_postgresql_bound_values_cannot_close_the_parenthesis(pg: DbConnection, drop_dir: Path,
                                                              tmp_path: Path) -> None:
    """A placeholder misplaced inside quotes, and a hostile value bound on the client.

    psycopg binds ``COPY`` values on the client: ``'%(v)s'`` becomes ``''<v>''``, which
    leaves the value outside any string literal.
    """
    target = drop_dir / "pwned"
    value = f") TO PROGRAM $$touch {target}$$ --"
    query = pg.query("SELECT '%(v)s' AS a, %(v)s AS b", {"v": value})
    for file_format in ("csv", "parquet"):
        with pytest.raises(DataError):
            query.export_channel(tmp_path / f"out.{file_format}", file_format)
        assert not target.exists()


def test_postgresql_data_modifying_queries_are_refused(pg: DbConnection, pg_server: object,
                                                       pg_schema: str, tmp_path: Path) -> None:
    victim = pg.dialect.qualified("victim", pg.schema)
    for sql in [f"WITH d AS (DELETE FROM {victim} RETURNING *) SELECT * FROM d",
                f"SELECT * FROM {victim} FOR UPDATE",
                f"SELECT * INTO {pg.dialect.qualified('copy', pg.schema)} FROM {victim}"]:
        for run in _READS:
            with pytest.raises(DataError):
                run(pg, sql, tmp_path)
    assert _victim_rows(pg_server, pg_schema) == 3


def test_postgresql_reads_every_kind_of_query(pg: DbConnection, tmp_path: Path) -> None:
    victim = pg.dialect.qualified("victim", pg.schema)
    for sql in [f"SELECT ID FROM {victim} ORDER BY ID", f"TABLE {victim} ORDER BY ID",
                f"WITH v AS (SELECT ID FROM {victim}) SELECT ID FROM v ORDER BY ID",
                "VALUES (1), (2), (3)", f"(SELECT ID FROM {victim} ORDER BY ID)",
                f"SELECT ID FROM {victim} ORDER BY ID -- trailing comment",
                f"SELECT ID FROM {victim} WHERE '100%' LIKE '%' ORDER BY ID"]:
        assert [r[0] for r in pg.execute_query(sql)[0]] == [1, 2, 3], sql
        assert pg.to_arrow(sql).column(0).to_pylist() == [1, 2, 3], sql
        assert pg.export(sql, tmp_path / "out.csv") == 3, sql
        lines = (tmp_path / "out.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in lines] == ["1", "2", "3"], sql
    query = pg.query(f"SELECT ID FROM {victim} WHERE ID >= %s AND 'a%%' = 'a%%' ORDER BY ID",
                     [2])
    assert query.export_channel(tmp_path / "p.csv") == 2
    assert (tmp_path / "p.csv").read_text() == "2\n3\n"
    assert query.to_arrow().column(0).to_pylist() == [2, 3]


# -- PostgreSQL: the server's own guarantee, with fedsage's text guard out of the way --


def test_postgresql_session_quoting_the_lexer_cannot_know(pg_server: object, pg_schema: str,
                                                          tmp_path: Path) -> None:
    """With ``standard_conforming_strings`` off, ``'\\''`` is one string to the server.

    fedsage's lexer cannot know the session's setting (it comes from the URL), so it sees
    one statement where the server sees three; the server must be the one to refuse.
    """
    url = (pg_server.url  # type: ignore[attr-defined]
           + "?options=-c%20standard_conforming_strings%3Doff")
    with DbConnection.from_url(url, schema=pg_schema) as db:
        victim = _make_victim(db)
        attack = f"SELECT '\\''; COMMIT; DELETE FROM {victim}; SELECT ''"
        for run in (lambda: db.execute_query(attack), lambda: db.to_arrow(attack),
                    lambda: db.export(attack, tmp_path / "out.csv")):
            with pytest.raises(DataError):
                run()
        assert _victim_rows(pg_server, pg_schema) == 3
        assert db.execute_query("SELECT 'a\\'' || 'b'")[0] == [("a'b",)]



def test_postgresql_dialect_refuses_without_the_text_guard(pg: DbConnection, pg_server: object,
                                                           pg_schema: str, drop_dir: Path,
                                                           tmp_path: Path) -> None:
    """The dialect methods, called directly, rely on the server alone."""
    dialect, conn = pg.dialect, pg._conn
    victim = dialect.qualified("victim", pg.schema)
    target = drop_dir / "pwned"
    attacks = [DOLLAR_SMUGGLE.format(victim=victim), f"SELECT 1; DELETE FROM {victim}",
               COPY_BREAKOUT.format(target=target)]
    for sql in attacks:
        with pytest.raises(DataError):
            dialect.fetch_query(conn, sql, None)
        conn.rollback()
        with open(tmp_path / "out.csv", "wb") as handle, pytest.raises(DataError):
            dialect.copy_csv(conn, sql, None, handle, None)
        conn.rollback()
        with pytest.raises(DataError):
            list(dialect.iter_arrow(conn, sql, None, 100))
        conn.rollback()
    assert _victim_rows(pg_server, pg_schema) == 3
    assert not target.exists()


def test_clause_methods_run_one_statement(db: DbConnection) -> None:
    """fedml-aws's clause arguments are caller SQL: still one statement."""
    victim = _make_victim(db)
    for call in [lambda: db.delete_from_table("victim", "$$'$$ = $$x$$; DROP TABLE victim; --"),
                 lambda: db.update_table("victim", "ID = 1", "$$'$$ = $$x$$; DROP TABLE victim"),
                 lambda: db.alter_table("victim", "ADD COLUMN A INT; DROP TABLE victim")]:
        with pytest.raises(DataError):
            call()
    assert db.execute_query(f"SELECT COUNT(*) FROM {victim}")[0] == [(3,)]
    # The engine refuses a second statement even when nothing checked the text first.
    cursor = db._conn.cursor()
    try:
        with pytest.raises(DataError), db.dialect.translate_errors("", "test"):
            db.dialect.run_statement(cursor, f"DELETE FROM {victim} WHERE ID = 1; "
                                             f"DELETE FROM {victim}")
    finally:
        cursor.close()
        db._end(False)
    assert db.execute_query(f"SELECT COUNT(*) FROM {victim}")[0] == [(3,)]


# -- DuckDB and SQLite -----------------------------------------------------------------


def test_every_engine_refuses_smuggled_statements(db: DbConnection, tmp_path: Path) -> None:
    victim = _make_victim(db)
    attacks = [DOLLAR_SMUGGLE.format(victim=victim),
               f"SELECT 1; DELETE FROM {victim}",
               f"WITH a AS (SELECT 1) DELETE FROM {victim} RETURNING *",
               f"WITH a AS (SELECT 1) UPDATE {victim} SET ID = 0 RETURNING *"]
    for sql in attacks:
        for run in _READS:
            with pytest.raises(DataError):
                run(db, sql, tmp_path)
            assert db.execute_query(f"SELECT COUNT(*) FROM {victim}")[0] == [(3,)], sql
    assert not (tmp_path / "out.csv").exists()


def test_sqlite_streaming_is_read_only_and_stays_writable_after(tmp_path: Path) -> None:
    with DbConnection.from_url(f"sqlite:///{tmp_path / 's.db'}") as db:
        victim = _make_victim(db)
        with pytest.raises(DataError):
            db.to_arrow(f"WITH a AS (SELECT 1) DELETE FROM {victim} RETURNING *")
        assert db.to_arrow(f"SELECT ID FROM {victim}").num_rows == 3
        # Writes through the table methods still work after a read.
        db.delete_from_table("victim", "ID = 1")
        assert db.get_table_size("victim") == [(2,)]


def test_duckdb_runs_the_statement_it_parsed(tmp_path: Path) -> None:
    with DbConnection.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}") as db:
        victim = _make_victim(db)
        for sql in [f"EXPLAIN ANALYZE DELETE FROM {victim}",
                    f"SELECT * FROM query('DELETE FROM {victim}')"]:
            with pytest.raises(DataError):
                db.to_arrow(sql)
            with pytest.raises(DataError):
                db.execute_query(sql)
        assert db.get_table_size("victim") == [(3,)]
