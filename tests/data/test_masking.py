"""Secrets in database URLs never reach a repr, ``describe()``, a log line or an error.

A URL can carry a secret in its userinfo (``u:PASSWORD@host``) and in its query
(``?password=``, ``sslpassword``, ``token``, ``access_token``, ``secret``, ...); every
one of them is masked wherever fedsage renders the URL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from _databases import pg_dsn

from fedsage.data import DbConnection
from fedsage.data._url import parse_url
from fedsage.data.config import load_config, masked_url
from fedsage.errors import FedsageError

SECRETS = {
    "password": "Qu3ry-Pa55word",
    "sslpassword": "Ssl-Pa55phrase",
    "token": "T0ken-Value-42",
    "access_token": "Acce55-T0ken",
    "secret": "Sh-h-Secret",
    "client_secret": "Client-Secret-9",
    "api_key": "Api-Key-777",
}
USERINFO_PASSWORD = "Us3r-Pa55:@/?#%"


def _query(keys: list[str]) -> str:
    return "&".join(f"{k}={quote(SECRETS[k], safe='')}" for k in keys)


def _assert_masked(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text
        assert quote(secret, safe="") not in text


def test_masked_url_masks_userinfo_and_every_secret_query_key() -> None:
    url = (f"postgresql+psycopg://alice:{quote(USERINFO_PASSWORD, safe='')}@db.example:5432/"
           f"sales?{_query(list(SECRETS))}&sslmode=require&application_name=notebook")
    masked = masked_url(url)
    _assert_masked(masked, [USERINFO_PASSWORD, *SECRETS.values()])
    assert masked.startswith("postgresql+psycopg://alice:***@db.example:5432/sales?")
    for key in SECRETS:
        assert f"{key}=***" in masked
    # What is not secret stays readable.
    assert "sslmode=require" in masked and "application_name=notebook" in masked
    # Repeated keys and upper-case spellings are secrets too.
    assert "S1" not in masked_url("mssql+pyodbc://h/db?PWD=S1&Password=S1&password=S1")
    assert masked_url("not a url") == "<unparsable URL>"
    assert SECRETS["token"] not in repr(parse_url(f"duckdb:///x.duckdb?token={SECRETS['token']}"))


@pytest.mark.parametrize("key", sorted(SECRETS))
def test_config_repr_and_describe_mask_query_secrets(key: str) -> None:
    url = f"postgresql+psycopg://alice:{quote(USERINFO_PASSWORD, safe='')}@h:1/db?{_query([key])}"
    config = load_config(url=url)
    for text in (repr(config), config.describe(), str(config)):
        _assert_masked(text, [USERINFO_PASSWORD, SECRETS[key]])
        assert "h:1" in text


def test_live_connection_repr_and_log_line_mask_secrets(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    keys = ["password", "token", "access_token", "secret"]
    url = f"sqlite:///{tmp_path / 'm.db'}?{_query(keys)}"
    caplog.set_level(logging.DEBUG)
    with pytest.warns(Warning), DbConnection(url=url) as db:  # SQLAlchemy ignores the keys
        texts = [repr(db), repr(db.config), db.config.describe()]
    texts.append(caplog.text)
    assert "connecting to sqlite:///" in caplog.text
    for text in texts:
        _assert_masked(text, [SECRETS[k] for k in keys])
        assert "m.db" in text


@pytest.fixture
def secret_role(pg_server: object) -> str:
    """A role whose password is only ever given in the URL's query string."""
    with psycopg.connect(pg_dsn(pg_server), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("DROP ROLE IF EXISTS masked_user")
        conn.execute(f"CREATE ROLE masked_user LOGIN PASSWORD '{SECRETS['password']}'")
    return "masked_user"


def test_postgresql_live_connection_masks_query_password(pg_server: object, secret_role: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    port = pg_server.port  # type: ignore[attr-defined]
    url = (f"postgresql+psycopg://{secret_role}@127.0.0.1:{port}/postgres?"
           f"{_query(['password', 'sslpassword'])}&sslmode=disable")
    caplog.set_level(logging.DEBUG)
    with DbConnection(url=url) as db:
        assert db.execute_query("SELECT current_user")[0] == [(secret_role,)]
        texts = [repr(db), repr(db.config), db.config.describe(), caplog.text]
    for text in texts:
        _assert_masked(text, [SECRETS["password"], SECRETS["sslpassword"]])
    assert f"127.0.0.1:{port}" in texts[0]


_PW = quote(USERINFO_PASSWORD, safe="")


@pytest.mark.parametrize(("url", "where"), [
    # psycopg directly: the server refuses the connection
    (f"postgresql+psycopg://alice:{_PW}@127.0.0.1:1/db?" + _query(["password", "sslpassword"]),
     "alice:***@127.0.0.1:1/db"),
    # psycopg refuses an unknown option
    ("postgresql+psycopg://alice@127.0.0.1:1/db?" + _query(["token", "access_token"]),
     "127.0.0.1:1"),
    # through SQLAlchemy (a host in the query)
    ("postgresql+psycopg://alice@/db?host=127.0.0.1&port=1&" + _query(["password", "secret"]),
     "host=127.0.0.1"),
    # a port SQLAlchemy cannot read
    (f"postgresql+psycopg://alice:{_PW}@h:notaport/db?" + _query(["password"]), "notaport"),
    # a scheme SQLAlchemy cannot parse, and one without a driver
    (f"my-db://alice:{_PW}@h/db?" + _query(["token"]), "unparsable URL"),
    (f"nosuchdb+driver://alice:{_PW}@h/db?" + _query(["api_key"]),
     "nosuchdb+driver://alice:***@h/db?api_key=***"),
    # DuckDB: the query becomes DuckDB settings, which it refuses
    ("duckdb:///{tmp}/w.duckdb?" + _query(["token", "secret"]), "w.duckdb"),
], ids=["refused", "unknown-option", "sqlalchemy", "bad-port", "bad-scheme", "no-driver",
        "duckdb"])
def test_connection_errors_mask_secrets(url: str, where: str, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FedsageError) as info:
        DbConnection(url=url)
    text = f"{info.value}\n{info.value!r}\n{caplog.text}"
    _assert_masked(text, [USERINFO_PASSWORD, *SECRETS.values()])
    # The message still says where it tried to connect.
    assert where in str(info.value)


def test_config_file_errors_mask_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"url": "postgresql+psycopg://alice@127.0.0.1:1/db?'
                    + _query(["password"]) + '"}')
    with pytest.raises(FedsageError) as info:
        DbConnection()
    _assert_masked(str(info.value), [SECRETS["password"]])
    assert str(path) in str(info.value)


def test_notebook_summaries_of_queries_mask_the_url(tmp_path) -> None:
    from fedsage.data import DbConnection

    url = f"duckdb:///{tmp_path}/w.duckdb?password=never-shown"
    with DbConnection.from_url(url) as db:
        page = db.query("SELECT 1 AS one WHERE 1 < ?", [2])._repr_html_()
    assert "SELECT 1 AS one WHERE 1 &lt; ?" in page and "1 bound parameter" in page
    assert "never-shown" not in page
