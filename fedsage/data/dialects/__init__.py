"""Dialects: one module per engine, one registry that opens a connection for a config.

:func:`open_connection` is the only place that turns a
:class:`~fedsage.data.config.ConnectionConfig` into a live DB-API connection and the
matching :class:`~fedsage.data.dialects.base.Dialect`.

DuckDB files and ``postgresql+psycopg://`` URLs are opened with their drivers directly,
without importing SQLAlchemy (a quarter of a second): the URL is parsed as SQLAlchemy
parses it and handed to ``psycopg.connect`` as SQLAlchemy's psycopg dialect would.
Other URLs (and PostgreSQL URLs with several hosts) go through ``create_engine``.

Every message shows the URL through :func:`~fedsage.data._url.masked_url` and passes
the driver's own text through :func:`~fedsage.data._url.redact`, so no secret of the
URL (password, ``?password=``, ``sslpassword``, tokens) is ever shown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, DataError
from .._url import masked_url, parse_url, redact
from ..config import ConnectionConfig
from .base import Dialect

__all__ = ["Dialect", "OpenConnection", "open_connection"]

logger = logging.getLogger(__name__)


@dataclass
class OpenConnection:
    """A live DB-API connection, its dialect and how to close it."""

    dialect: Dialect
    dbapi: Any
    close: Callable[[], None]


def _detail(exc: BaseException, config: ConnectionConfig) -> str:
    """A driver's error message on one line, without any secret of the configuration."""
    text = " ".join(str(exc).split())
    text = redact(text, config.url)
    password = config.hana.get("password") if config.hana else None
    return text.replace(password, "***") if isinstance(password, str) and password else text


def _duckdb_target(url: str) -> tuple[str, dict[str, Any]]:
    """The file of a ``duckdb://`` URL and its query (DuckDB settings, as duckdb-engine)."""
    rest = url.split("://", 1)[1]
    path, _sep, query = rest.partition("?")
    path = path[1:] if path.startswith("/") else path
    parsed = parse_url(url)
    settings: dict[str, Any] = {k: v if isinstance(v, str) else v[-1]
                for k, v in (parsed.query.items() if parsed is not None and query else ())}
    return path or ":memory:", settings


def _open_duckdb(config: ConnectionConfig) -> OpenConnection:
    import duckdb

    from .duckdb import DuckDBDialect, connect_duckdb

    path, settings = _duckdb_target(config.url or "")
    try:
        conn = connect_duckdb(path, settings)
    except duckdb.Error as exc:
        raise DataError(f"cannot open the DuckDB file {config.describe()}: "
                        f"{_detail(exc, config)}") from None
    _private_if_in_home(path)
    return OpenConnection(DuckDBDialect(), conn, conn.close)


def _private_if_in_home(path: str) -> None:
    """The embedded warehouse (a DuckDB file in FEDSAGE_HOME) is for this user only."""
    if path == ":memory:":
        return
    from ..._home import fedsage_home

    file = Path(path).resolve()
    if fedsage_home() in file.parents:
        for part in (file, file.with_name(file.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                part.chmod(0o600)


def _log_notice(diagnostic: Any) -> None:
    # What SQLAlchemy's psycopg dialect does with server notices.
    logging.getLogger("sqlalchemy.dialects.postgresql").info(
        "%s: %s", diagnostic.severity, diagnostic.message_primary)


def _psycopg_kwargs(url: str) -> dict[str, Any] | None:
    """``psycopg.connect`` arguments for ``url`` as SQLAlchemy makes them, or ``None``.

    ``None`` (leave it to SQLAlchemy) for anything but a plain
    ``postgresql+psycopg://`` URL: several hosts or repeated query keys.
    """
    parsed = parse_url(url)
    if parsed is None or parsed.drivername != "postgresql+psycopg":
        return None
    if "host" in parsed.query or any(not isinstance(v, str) for v in parsed.query.values()):
        return None
    kwargs: dict[str, Any] = {
        key: value for key, value in (
            ("host", parsed.host), ("dbname", parsed.database), ("user", parsed.username),
            ("password", parsed.password), ("port", parsed.port)) if value}
    kwargs.update(parsed.query)
    return kwargs


def _open_psycopg(config: ConnectionConfig, kwargs: dict[str, Any]) -> OpenConnection:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot use the URL {masked_url(config.url or '')} from {config.source}: "
            f"{_detail(exc, config)}; check the scheme and install its driver (e.g. psycopg "
            "for postgresql+psycopg://)") from None
    from .postgresql import PostgreSQLDialect

    try:
        conn = psycopg.connect(**kwargs) if kwargs else psycopg.connect("")
    except psycopg.Error as exc:
        raise DataError(f"cannot connect to {config.describe()}: {_detail(exc, config)}") from None
    try:
        conn.add_notice_handler(_log_notice)
        # As SQLAlchemy's first connect: hstore values load as dicts where it exists.
        from psycopg.types import TypeInfo

        info = TypeInfo.fetch(conn, "hstore")
        if info is not None:
            from psycopg.types.hstore import register_hstore

            register_hstore(info, conn)
        conn.rollback()
    except psycopg.Error as exc:
        conn.close()
        raise DataError(f"cannot connect to {config.describe()}: {_detail(exc, config)}") from None
    return OpenConnection(PostgreSQLDialect(), conn, conn.close)


def _open_url(config: ConnectionConfig) -> OpenConnection:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    url = config.url or ""
    try:
        engine = create_engine(url, poolclass=NullPool)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot use the URL {masked_url(url)} from {config.source}: "
            f"{_detail(exc, config)}; check the scheme, the port and install the driver "
            "(e.g. psycopg for postgresql+psycopg://)"
        ) from None
    try:
        raw = engine.raw_connection()
    except (DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:
        engine.dispose()
        detail = _detail(getattr(exc, "orig", None) or exc, config)
        raise DataError(f"cannot connect to {config.describe()}: {detail}") from None
    sa_dialect = engine.dialect
    dialect: Dialect
    if sa_dialect.name == "postgresql" and sa_dialect.driver == "psycopg":
        from .postgresql import PostgreSQLDialect

        dialect = PostgreSQLDialect(sa_dialect)
    elif sa_dialect.name == "sqlite":
        from .sqlalchemy_url import SQLiteDialect

        dialect = SQLiteDialect(sa_dialect)
    elif sa_dialect.name == "hana":
        from .hana import HanaDialect

        dialect = HanaDialect()
    else:
        from .sqlalchemy_url import SQLAlchemyDialect

        dialect = SQLAlchemyDialect(sa_dialect, (sa_dialect.loaded_dbapi.Error,))

    def close() -> None:
        raw.close()
        engine.dispose()

    return OpenConnection(dialect, raw, close)


def _open_hana(config: ConnectionConfig) -> OpenConnection:
    from .hana import HanaDialect, import_hdbcli

    dbapi = import_hdbcli()
    dialect = HanaDialect()
    try:
        conn = dbapi.connect(**config.hana)
    except dbapi.Error as exc:
        text = _detail(getattr(exc, "errortext", None) or exc, config)
        raise DataError(
            f"cannot connect to SAP HANA at {config.hana.get('address')}:"
            f"{config.hana.get('port')} as user {config.hana.get('user')!r} "
            f"(config {config.source}): {text}. Check the address and port, that your IP "
            "is in Datasphere's IP allowlist, and the database user's credentials"
        ) from exc
    return OpenConnection(dialect, conn, conn.close)


def open_connection(config: ConnectionConfig) -> OpenConnection:
    """Connect as ``config`` says.

    Parameters
    ----------
    config : ConnectionConfig
        The parsed configuration.

    Returns
    -------
    OpenConnection

    Raises
    ------
    DataError
        If the database cannot be reached; the message names the host and port (or
        file) and the configuration file, never the password.
    MissingExtraError
        If the driver for the configuration is not installed.
    """
    logger.info("connecting to %s", config.describe())
    if config.kind == "hana":
        return _open_hana(config)
    if (config.url or "").startswith("duckdb://"):
        return _open_duckdb(config)
    kwargs = _psycopg_kwargs(config.url or "")
    if kwargs is not None:
        return _open_psycopg(config, kwargs)
    return _open_url(config)
