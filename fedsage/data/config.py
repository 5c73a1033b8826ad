"""Where a :class:`~fedsage.data.DbConnection` connects to: reading ``config.json``.

Three kinds of configuration exist:

- **hana**: SAP Datasphere / SAP HANA Cloud keys (``address``, ``port``, ``user``,
  ``password``, ``schema`` and optional hdbcli flags), as in fedml-aws's ``config.json``;
- **url**: ``{"url": "<any SQLAlchemy URL>", "schema": "<optional default schema>"}``;
- **embedded**: no configuration file at all; fedsage's DuckDB warehouse under
  ``FEDSAGE_HOME``.

Secrets (passwords, user keys, secrets in a URL's query) never appear in a repr, a log
line or an error message: every URL is shown through :func:`fedsage.data._url.masked_url`.

Keys fedsage does not know are warned about (:class:`UnknownConfigKeyWarning`) and
ignored, as fedml-aws ignored them: Datasphere's own configuration files carry extra
keys.  Without any configuration file, :func:`load_config` falls back to the embedded
warehouse and says so once per process (:class:`EmbeddedWarehouseWarning`).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._home import fedsage_home
from ..errors import ConfigurationError
from ._url import masked_url

__all__ = ["ConnectionConfig", "EmbeddedWarehouseWarning", "UnknownConfigKeyWarning",
           "hdbcli_kwargs", "load_config", "masked_url"]

logger = logging.getLogger(__name__)

REQUIRED_HANA_KEYS = ("address", "port", "user", "password", "schema")

# Optional hdbcli flags and fedsage's defaults.  Unlike fedml-aws (which defaulted
# sslValidateCertificate to "false"), certificates are validated unless the file says not.
HANA_FLAG_DEFAULTS: dict[str, bool | int] = {
    "encrypt": True,
    "sslValidateCertificate": True,
    "disableCloudRedirect": True,
    "communicationTimeout": 0,
    "autocommit": True,
    "sslUseDefaultTrustStore": True,
}
_BOOL_FLAGS = frozenset(
    {"encrypt", "sslValidateCertificate", "disableCloudRedirect", "autocommit",
     "sslUseDefaultTrustStore", "reconnect", "compress"}
)
_INT_FLAGS = frozenset(
    {"communicationTimeout", "connectTimeout", "nodeConnectTimeout", "packetSize", "fetchSize",
     "proxyPort", "port"}
)
# Connection properties hdbcli knows (datasphere.md §2); anything else is not passed to
# hdbcli (fedml-aws passed only its own keys) and is warned about: it may be a typo.
_KNOWN_HANA_KEYS = frozenset(
    set(REQUIRED_HANA_KEYS) | set(HANA_FLAG_DEFAULTS) | _BOOL_FLAGS | _INT_FLAGS
    | {"userkey", "sslTrustStore", "sslHostNameInCertificate", "sslCryptoProvider",
       "sslKeyStore", "sslSNIHostname", "sslMinProtocolVersion", "sslMaxProtocolVersion",
       "currentSchema", "prefetch", "isolationLevel", "locale", "proxyHostName",
       "webSocketUrl", "statementCacheSize", "tcpKeepAliveIdle", "tcpKeepAliveInterval",
       "tcpKeepAliveCount", "traceFile", "databaseName"}
)
_SECRET_KEYS = frozenset({"password", "userkey"})
_URL_KEYS = frozenset({"url", "schema"})


class EmbeddedWarehouseWarning(UserWarning):
    """``DbConnection()`` found no ``config.json`` and uses the embedded warehouse."""


class UnknownConfigKeyWarning(UserWarning):
    """A configuration file has keys fedsage does not use; they are ignored."""


_embedded_warned = False
_embedded_lock = threading.Lock()
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class ConnectionConfig:
    """A parsed connection configuration.

    Parameters
    ----------
    kind : {'hana', 'url', 'embedded'}
        Which kind of database to connect to.
    source : str
        Where the configuration came from (a file path, ``'<argument>'`` or
        ``'<embedded default>'``); named in error messages.
    hana : dict, default={}
        The hdbcli connection properties (``kind='hana'``), already coerced.
    url : str or None, default=None
        The SQLAlchemy URL (``kind='url'``) or the DuckDB file (``kind='embedded'``).
    schema : str or None, default=None
        The default schema for unqualified names.
    """

    kind: str
    source: str
    hana: dict[str, Any] = field(default_factory=dict, repr=False)
    url: str | None = field(default=None, repr=False)
    schema: str | None = None

    def describe(self) -> str:
        """Return a one-line description with every secret masked."""
        if self.kind == "hana":
            where = f"{self.hana.get('address')}:{self.hana.get('port')}"
            return f"SAP HANA {where} as {self.hana.get('user')!r} (config {self.source})"
        return f"{masked_url(self.url or '')} (config {self.source})"

    def __repr__(self) -> str:
        return f"ConnectionConfig(kind={self.kind!r}, {self.describe()}, schema={self.schema!r})"


def _coerce(key: str, value: Any, source: str) -> Any:
    if key in _BOOL_FLAGS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigurationError(
            f"{key!r} in {source} must be true or false (or \"true\"/\"false\"/\"1\"/\"0\"); "
            f"got {value!r}"
        )
    if key in _INT_FLAGS:
        if isinstance(value, bool):
            raise ConfigurationError(f"{key!r} in {source} must be an integer; got {value!r}")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigurationError(
                f"{key!r} in {source} must be an integer; got {value!r}"
            ) from None
    return value


def hdbcli_kwargs(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Turn fedml-aws-style HANA keys into keyword arguments for ``hdbcli.dbapi.connect``.

    Parameters
    ----------
    raw : dict
        The keys of ``config.json``.
    source : str
        The file they came from, for error messages.

    Returns
    -------
    dict
        Connection properties with booleans and integers coerced and fedsage's defaults
        (certificates validated) filled in.  ``schema`` is not passed: it names the
        schema fedsage reads views from, while the session keeps the user's own schema
        (the Open SQL schema, where writes go), as with fedml-aws.

    Raises
    ------
    ConfigurationError
        If a required key is missing or a value has the wrong type.

    Warns
    -----
    UnknownConfigKeyWarning
        For keys that are not hdbcli connection properties (they are ignored).
    """
    has_key = "userkey" in raw
    missing = [k for k in REQUIRED_HANA_KEYS if k not in raw and not (
        has_key and k in ("user", "password"))]
    if missing:
        raise ConfigurationError(
            f"{source} lacks the key(s) {', '.join(missing)}; a Datasphere config needs "
            f"{', '.join(REQUIRED_HANA_KEYS)} (or a 'url' key with a SQLAlchemy URL)"
        )
    unknown = sorted(k for k in raw if k not in _KNOWN_HANA_KEYS
                     and not k.startswith("sessionVariable:"))
    if unknown:
        _warn_unknown(source, unknown, "they are not hdbcli connection properties (check the "
                      "spelling: a typo such as 'sslValidateCertifcate' changes nothing)")
    kwargs: dict[str, Any] = dict(HANA_FLAG_DEFAULTS)
    for key, value in raw.items():
        if key == "schema" or key in unknown:
            continue
        kwargs[key] = _coerce(key, value, source)
    if not isinstance(kwargs.get("address"), str) or not kwargs["address"]:
        raise ConfigurationError(f"'address' in {source} must be a non-empty host name")
    if kwargs["sslValidateCertificate"] is False:
        logger.warning(
            "sslValidateCertificate is false in %s: the server's certificate is not checked",
            source,
        )
    return kwargs


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first caller outside fedsage (the notebook)."""
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _warn_unknown(source: str, keys: list[str], why: str) -> None:
    # Only the names: an unknown key may hold a secret.
    _warn(f"{source}: ignoring the key(s) {', '.join(map(repr, keys))}; {why}",
          UnknownConfigKeyWarning)


def _read_json(path: Path | Any, source: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must hold a JSON object; got {type(data).__name__}")
    return data


def embedded_config(path: Path | None = None) -> ConnectionConfig:
    """Return the configuration of the embedded DuckDB warehouse.

    Parameters
    ----------
    path : pathlib.Path or None, default=None
        The DuckDB file; default ``fedsage_home() / "warehouse.duckdb"``.

    Returns
    -------
    ConnectionConfig
    """
    target = path if path is not None else fedsage_home() / "warehouse.duckdb"
    return ConnectionConfig(kind="embedded", source="<embedded default>",
                            url=f"duckdb:///{target}")


def from_mapping(data: dict[str, Any], source: str) -> ConnectionConfig:
    """Parse the keys of a configuration (see the module docstring).

    Parameters
    ----------
    data : dict
        The keys of the configuration.
    source : str
        Where they came from, for messages.

    Returns
    -------
    ConnectionConfig

    Raises
    ------
    ConfigurationError
        If a required key is missing or a value has the wrong type.

    Warns
    -----
    UnknownConfigKeyWarning
        For keys that are ignored.
    """
    if "url" in data:
        extra = sorted(set(data) - _URL_KEYS)
        if extra:
            _warn_unknown(source, extra, "with a 'url' only 'schema' is used (put driver "
                          "options in the URL's query)")
        url, schema = data["url"], data.get("schema")
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(
                f"'url' in {source} must be a SQLAlchemy URL such as "
                "postgresql+psycopg://user@host/db or duckdb:///path.duckdb"
            )
        if schema is not None and not isinstance(schema, str):
            raise ConfigurationError(f"'schema' in {source} must be a string; got {schema!r}")
        return ConnectionConfig(kind="url", source=source, url=url, schema=schema)
    kwargs = hdbcli_kwargs(data, source)
    return ConnectionConfig(kind="hana", source=source, hana=kwargs, schema=str(data["schema"]))


def load_config(package_name: str | None = None, url: str | None = None) -> ConnectionConfig:
    """Find and parse the configuration the way fedml-aws's ``DbConnection`` does.

    Parameters
    ----------
    package_name : str or None, default=None
        Read the resource ``config.json`` inside this installed package.
    url : str or None, default=None
        Path of a configuration JSON file, or directly a SQLAlchemy URL (anything
        containing ``://``).

    Returns
    -------
    ConnectionConfig
        When neither argument is given and ``config.json`` does not exist in the working
        folder, the embedded DuckDB warehouse.

    Raises
    ------
    ConfigurationError
        If a named file is missing or invalid.

    Warns
    -----
    EmbeddedWarehouseWarning
        Once per process, when no ``config.json`` is found and the embedded warehouse
        is used.
    UnknownConfigKeyWarning
        For keys of the file that are ignored.
    """
    if url is not None and "://" in url:
        return from_mapping({"url": url}, "<argument>")
    if url is not None:
        path = Path(url).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"config file {path} not found; pass the path of a config.json, or omit "
                "url to use ./config.json or the embedded warehouse"
            )
        return from_mapping(_read_json(path, str(path)), str(path))
    if package_name is not None:
        try:
            resource = importlib.resources.files(package_name) / "config.json"
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"package_name={package_name!r} is not an importable package"
            ) from exc
        source = f"config.json in package {package_name}"
        if not resource.is_file():
            raise ConfigurationError(f"{source} not found")
        return from_mapping(_read_json(resource, source), source)
    default = Path("config.json")
    if default.is_file():
        source = str(default.resolve())
        return from_mapping(_read_json(default, source), source)
    warehouse = fedsage_home() / "warehouse.duckdb"
    logger.info("no config.json in %s; using the embedded warehouse %s", Path.cwd(), warehouse)
    _warn_embedded(Path.cwd() / "config.json", warehouse)
    return embedded_config(warehouse)


def _warn_embedded(searched: Path, warehouse: Path) -> None:
    """Say once per process that ``DbConnection()`` reads the embedded warehouse."""
    global _embedded_warned
    with _embedded_lock:
        if _embedded_warned:
            return
        _embedded_warned = True
    _warn(
        f"no config.json found (looked for {searched}); DbConnection() uses fedsage's "
        f"embedded DuckDB warehouse {warehouse}. To read from SAP "
        "Datasphere, write a config.json there with address, port, user, password and "
        "schema (your space's Database User Details), or pass "
        "DbConnection(url='path/to/config.json') or a SQLAlchemy URL",
        EmbeddedWarehouseWarning,
    )


def is_secret(key: str) -> bool:
    """Return whether a configuration key holds a secret."""
    return key in _SECRET_KEYS
