"""Configuration files, the HANA path without a server, and HANA SQL as text."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from fedsage.data import DbConnection
from fedsage.data._sqltext import first_keyword, statement_count
from fedsage.data.config import EmbeddedWarehouseWarning, UnknownConfigKeyWarning, load_config
from fedsage.data.dialects.hana import HanaDialect
from fedsage.errors import ConfigurationError, DataError, MissingExtraError

SECRET = "s3cr3t-P@ss"
HANA = {"address": "abc.hana.prod-eu10.hanacloud.ondemand.com", "port": "443",
        "user": "SALE#ETL", "password": SECRET, "schema": "SALE"}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


class _FakeHdbcliError(Exception):
    def __init__(self, errortext: str) -> None:
        super().__init__(-10709, errortext)
        self.errortext = errortext


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Capture the kwargs given to hdbcli.dbapi.connect; no HANA server can run here."""
    import hdbcli.dbapi

    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _FakeHdbcliError("Connection failed (RTE:[89006] System call 'connect' failed)")

    monkeypatch.setattr(hdbcli.dbapi, "connect", connect)
    monkeypatch.setattr(hdbcli.dbapi, "Error", _FakeHdbcliError)
    return seen


def test_hana_config_becomes_hdbcli_kwargs(tmp_path: Path, captured: dict[str, Any],
                                           caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, {**HANA, "encrypt": "true", "communicationTimeout": "0",
                      "disableCloudRedirect": "1"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DataError) as info:
        DbConnection()
    assert captured == {"address": HANA["address"], "port": 443, "user": "SALE#ETL",
                        "password": SECRET, "encrypt": True, "sslValidateCertificate": True,
                        "disableCloudRedirect": True, "communicationTimeout": 0,
                        "autocommit": True, "sslUseDefaultTrustStore": True}
    message = str(info.value)
    assert HANA["address"] in message and ":443" in message
    assert str(tmp_path / "config.json") in message
    assert SECRET not in message and SECRET not in caplog.text


def test_hana_flags_validated(tmp_path: Path, captured: dict[str, Any]) -> None:
    path = _write(tmp_path, {**HANA, "sslValidateCertificate": "maybe"}, "a.json")
    with pytest.raises(ConfigurationError, match="sslValidateCertificate"):
        DbConnection(url=str(path))
    path = _write(tmp_path, {**HANA, "sslValidateCertifcate": "false", "spaceId": "SALE"},
                  "b.json")
    # Unknown keys are warned about and not passed on (fedml-aws ignored them).
    with pytest.warns(UnknownConfigKeyWarning, match="'spaceId', 'sslValidateCertifcate'"), \
            pytest.raises(DataError):
        DbConnection(url=str(path))
    assert "sslValidateCertifcate" not in captured and "spaceId" not in captured
    assert captured["sslValidateCertificate"] is True
    missing = {k: v for k, v in HANA.items() if k != "schema"}
    with pytest.raises(ConfigurationError, match="schema"):
        DbConnection(url=str(_write(tmp_path, missing, "c.json")))
    path = _write(tmp_path, {**HANA, "sslValidateCertificate": False}, "d.json")
    with pytest.raises(DataError):
        DbConnection(url=str(path))
    assert captured["sslValidateCertificate"] is False
    assert captured == {**captured, "port": 443}


def test_missing_hdbcli_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, HANA)
    monkeypatch.setitem(sys.modules, "hdbcli", None)
    monkeypatch.setitem(sys.modules, "hdbcli.dbapi", None)
    with pytest.raises(MissingExtraError, match=r"fedsage\[datasphere\]"):
        DbConnection()


def test_repr_masks_password(tmp_path: Path) -> None:
    config = load_config(url=str(_write(tmp_path, HANA)))
    assert SECRET not in repr(config) and "SALE#ETL" in repr(config)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = DbConnection(url=str(_write(tmp_path, {"url": url}, "u.json")))
    assert "x.db" in repr(db)
    db.close()
    masked = load_config(url="postgresql+psycopg://u:s3cr3t-Pass@127.0.0.1:1/db")
    assert "s3cr3t-Pass" not in repr(masked)


def test_connection_error_names_host_not_password(tmp_path: Path) -> None:
    secret = "s3cr3t-Pass"
    path = _write(tmp_path, {"url": f"postgresql+psycopg://u:{secret}@127.0.0.1:1/db"})
    with pytest.raises(DataError) as info:
        DbConnection(url=str(path))
    assert "127.0.0.1:1" in str(info.value) and str(path) in str(info.value)
    assert secret not in str(info.value)


def test_no_config_means_embedded_warehouse(tmp_path: Path) -> None:
    with pytest.warns(EmbeddedWarehouseWarning), DbConnection() as db:
        assert db.dialect.name == "duckdb"
        assert (tmp_path / "home" / "warehouse.duckdb").exists()
    with pytest.raises(ConfigurationError, match="not found"):
        DbConnection(url=str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        DbConnection(url=str(tmp_path / "bad.json"))
    with pytest.raises(ConfigurationError, match="url"), \
            pytest.warns(UnknownConfigKeyWarning, match="'password'"):
        DbConnection(url=str(_write(tmp_path, {"url": "x", "password": "p"}, "e.json")))


def test_url_config_with_schema(tmp_path: Path) -> None:
    path = _write(tmp_path, {"url": f"duckdb:///{tmp_path / 'w.duckdb'}"})
    with DbConnection(url=str(path)) as db:
        db._run('CREATE SCHEMA "Sales Ü"', "setup", fetch=False)
    path = _write(tmp_path, {"url": f"duckdb:///{tmp_path / 'w.duckdb'}", "schema": "Sales Ü"})
    with DbConnection(url=str(path)) as db:
        db.create_table("CREATE TABLE t (A INTEGER)")
        assert db.get_user_tables() == (
            [("t", "Sales Ü", "BASE TABLE", None, None)],
            ["TABLE_NAME", "SCHEMA_NAME", "TABLE_TYPE", "COMMENTS", "CREATE_TIME"])


# -- HANA SQL, compiled by sqlalchemy-hana, checked as text --------------------------

@pytest.fixture
def hana() -> HanaDialect:
    return HanaDialect()


def test_hana_catalog_sql(hana: HanaDialect) -> None:
    sql, params = hana.compile(hana.views("SALE", "a%_"))
    text = " ".join(sql.split())
    assert text.startswith('SELECT "SYS"."VIEWS"."VIEW_NAME", "SYS"."VIEWS"."VIEW_TYPE" '
                           'FROM "SYS"."VIEWS" WHERE ')
    assert ('"SYS"."VIEWS"."SCHEMA_NAME" = ?' in text or '? = "SYS"."VIEWS"."SCHEMA_NAME"' in text)
    assert """(lower("SYS"."VIEWS"."VIEW_NAME") LIKE '%' || ? || '%' ESCAPE '/')""" in text
    assert text.endswith('ORDER BY "SYS"."VIEWS"."VIEW_NAME"')
    assert "SALE" not in text and "a/%/_" not in text  # values travel as parameters
    assert params == ["SALE", "a/%/_"]
    sql, params = hana.compile(hana.tables(None))
    text = " ".join(sql.split())
    assert ('"SYS"."TABLES"."SCHEMA_NAME" = CURRENT_SCHEMA' in text
            or 'CURRENT_SCHEMA = "SYS"."TABLES"."SCHEMA_NAME"' in text)
    assert params == ["FALSE", "FALSE"]
    sql, params = hana.compile(hana.columns("vT'x\"", "SALE", "view"))
    assert 'FROM "SYS"."VIEW_COLUMNS"' in sql and '"VIEW_NAME" = ?' in sql
    assert "ORDER BY" in sql and params == ["SALE", "vT'x\""]
    sql, params = hana.compile(hana.columns("T", None, "table"))
    assert 'FROM "SYS"."TABLE_COLUMNS"' in sql and params == ["T"]


def test_hana_reads_quote_names_and_bind_values(hana: HanaDialect) -> None:
    sql, params = hana.compile(hana.head("'; DROP TABLE x; --", "SALE", 10))
    assert " ".join(sql.split()) == "SELECT * FROM \"SALE\".\"'; DROP TABLE x; --\" LIMIT ?"
    assert params == [10]
    sql, params = hana.compile(hana.count('vT"anks', "SALE"))
    assert " ".join(sql.split()) == 'SELECT count(*) AS "COUNT" FROM "SALE"."vT""anks"'
    assert hana.qualified('a"b', None) == '"a""b"'
    compiled = hana.insert("my tab", None, ["id", "b c", "INSERTED_AT"]).compile(
        dialect=hana.sa_dialect)
    assert str(compiled) == 'INSERT INTO "my tab" (id, "b c", INSERTED_AT) VALUES (?, ?, ?)'


def test_sql_text_scanner() -> None:
    assert first_keyword("  -- c\n /* x */ select 1") == "SELECT"
    assert statement_count("select ';' as a; ") == 1
    assert statement_count('select 1 as ";"; drop table t') == 2
    assert statement_count("select 1 -- ; drop") == 1
