"""The streaming export path stays light: no SQLAlchemy (nor pandas) imported.

Importing SQLAlchemy costs about 0.25 s and pandas (through ``adbc_driver_manager.dbapi``)
about 0.5 s, a large share of a one-million-row export.  Each check runs in a fresh
interpreter, since this test process has imported everything already.  The last step
of each child calls a fedml-aws catalog method, which does build its statement with
SQLAlchemy: that proves the check would see the import if it happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _databases import pg_dsn
from _pgserver import PostgresServer

from fedsage.data import DbConnection
from fedsage.data._url import parse_url
from fedsage.data.config import masked_url
from fedsage.data.dialects import _psycopg_kwargs

ROOT = Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from fedsage.data import DbConnection

    def loaded():
        return {{m: m in sys.modules for m in ("sqlalchemy", "pyarrow", "pandas")}}

    steps = {{}}
    with DbConnection.from_url({url!r}, schema={schema!r}) as db:
        steps["connect"] = loaded()
        db.export("numbers", {out!r} + ".csv")
        steps["export csv (table)"] = loaded()
        db.export("SELECT n, label FROM numbers WHERE n > 1", {out!r} + ".parquet",
                  "parquet")
        steps["export parquet (query)"] = loaded()
        rows = sum(b.num_rows for b in db.iter_batches("numbers", batch_rows=2))
        rows += db.to_arrow(db.query("SELECT n FROM numbers")).num_rows
        steps["iter_batches, to_arrow"] = loaded()
        db.get_table_size("numbers")
        steps["get_table_size"] = loaded()
    print(json.dumps({{"steps": steps, "rows": rows}}))
""")


def _run_child(url: str, schema: str | None, out: Path) -> dict[str, Any]:
    code = _CHILD.format(root=str(ROOT), url=url, schema=schema, out=str(out))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _check(data: dict[str, Any], *, csv_without_arrow: bool) -> None:
    steps = data["steps"]
    assert data["rows"] == 6
    for step in ("connect", "export csv (table)", "export parquet (query)",
                 "iter_batches, to_arrow"):
        assert not steps[step]["sqlalchemy"], f"{step} imported SQLAlchemy"
        assert not steps[step]["pandas"], f"{step} imported pandas"
    if csv_without_arrow:  # PostgreSQL's COPY writes the CSV: no Arrow at all
        assert not steps["export csv (table)"]["pyarrow"]
    assert steps["export parquet (query)"]["pyarrow"]
    # The catalog methods build statements with SQLAlchemy: the check sees imports.
    assert steps["get_table_size"]["sqlalchemy"]


def test_duckdb_export_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with DbConnection.from_url(f"duckdb:///{path}") as db:
        db._conn.cursor().execute(
            "CREATE TABLE numbers AS SELECT i AS n, 'x' || i AS label FROM range(3) t(i)")
    _check(_run_child(f"duckdb:///{path}", None, tmp_path / "out"), csv_without_arrow=False)


def test_postgresql_export_does_not_import_sqlalchemy(
        pg_server: PostgresServer, pg_schema: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn(pg_server), autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_schema}".numbers AS '
                     "SELECT i AS n, 'x' || i AS label FROM generate_series(0, 2) i")
    _check(_run_child(pg_server.url, pg_schema, tmp_path / "out"), csv_without_arrow=True)


_URLS = [
    "postgresql+psycopg://fedsage:fedsage@127.0.0.1:5432/postgres",
    "postgresql+psycopg://us%40er:p%40ss%3Aw%2Fd@db.example.com/my%20db?sslmode=require"
    "&connect_timeout=5",
    "postgresql+psycopg://user@[::1]:6543/db",
    "postgresql+psycopg:///db?host=/var/run/postgresql",
    "postgresql+psycopg://",
    "postgresql+psycopg://u:@h/d",
    "postgresql+psycopg://h/d?application_name=a&application_name=b",
    "duckdb:///tmp/x.duckdb",
    "sqlite:///relative.db",
    "hana+hdbcli://u:secret@host:443?encrypt=true",
]


@pytest.mark.parametrize("url", _URLS)
def test_url_parsing_matches_sqlalchemy(url: str) -> None:
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
    from sqlalchemy.engine import make_url

    parsed, expected = parse_url(url), make_url(url)
    assert parsed is not None
    assert parsed.render(hide_password=True) == expected.render_as_string(hide_password=True)
    assert parsed.render(hide_password=False) == expected.render_as_string(hide_password=False)
    assert masked_url(url) == expected.render_as_string(hide_password=True)
    kwargs = _psycopg_kwargs(url)
    if kwargs is not None:  # the arguments SQLAlchemy's psycopg dialect would pass
        args, params = PGDialect_psycopg(dbapi=psycopg).create_connect_args(expected)
        params.pop("context", None)
        assert (kwargs, args) == (params, [] if kwargs else [""])
    else:
        assert not url.startswith("postgresql+psycopg://") or "host=" in url or (
            url.count("application_name=") > 1)


def test_unparsable_url_is_masked_without_sqlalchemy() -> None:
    assert masked_url("not a url") == "<unparsable URL>"
    assert masked_url("postgresql+psycopg://u:pw@h:notaport/d") == "<unparsable URL>"
