"""Database fixtures shared by every test folder (registered by tests/conftest.py).

One real PostgreSQL server for the whole run (Debian's package, started and stopped by
``_pgserver``), a fresh schema per test, and ``db``: a connection parametrised over DuckDB
(a file), SQLite (a file) and PostgreSQL, so a test that takes it runs on all three.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

from _pgserver import PostgresServer, postgres_server

from fedsage.data import DbConnection

_counter = itertools.count()


def pg_dsn(server: PostgresServer) -> str:
    """A libpq connection string for the test server's superuser."""
    return f"host=127.0.0.1 port={server.port} user=fedsage password=fedsage dbname=postgres"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    # Under /tmp, not pytest's tmp folder: as root the server runs as ``postgres``,
    # which cannot enter pytest's private (0700) folders.
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_schema(pg_server: PostgresServer) -> str:
    schema = f"t{next(_counter)}"
    with psycopg.connect(pg_dsn(pg_server), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


@pytest.fixture(params=["duckdb", "sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConnection]:
    if request.param == "duckdb":
        conn = DbConnection.from_url(f"duckdb:///{tmp_path / 'w.duckdb'}")
    elif request.param == "sqlite":
        conn = DbConnection.from_url(f"sqlite:///{tmp_path / 's.db'}")
    else:
        server = request.getfixturevalue("pg_server")
        schema = request.getfixturevalue("pg_schema")
        conn = DbConnection.from_url(server.url, schema=schema)
    try:
        yield conn
    finally:
        conn.close()
