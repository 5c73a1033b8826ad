"""Parse and mask SQLAlchemy-style database URLs without importing SQLAlchemy.

Importing SQLAlchemy costs about a quarter of a second, more than connecting; only the
statement-building methods need it.  :func:`parse_url` follows
``sqlalchemy.engine.url.make_url`` (same pattern, same unquoting, repeated query keys
become lists) and :meth:`ParsedURL.render` follows ``URL.render_as_string``, so
messages read the same as before.

Secrets: SQLAlchemy hides only the userinfo password, but drivers also take secrets
from the query string (``?password=``, ``sslpassword``, ``token``, ...).
:func:`masked_url` is the one function that renders a URL for people (reprs, logs,
messages): it masks the userinfo password and the value of every query key
:func:`is_secret_key` names.  :func:`redact` removes the same values from text that
fedsage did not write (a driver's error message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

__all__ = ["ParsedURL", "is_secret_key", "masked_url", "parse_url", "redact"]

_SCHEME = re.compile(r"^[\w+]+$")
MASK = "***"
# Query keys whose values are secrets: any key containing one of these (case and "-"
# ignored), e.g. password, sslpassword, PWD, token, access_token, client_secret, api_key.
_SECRET_PARTS = ("password", "passwd", "pwd", "secret", "token", "credential", "apikey",
                 "api_key", "accesskey", "access_key", "privatekey", "private_key",
                 "accountkey", "account_key", "userkey", "passphrase")
_SECRET_KEYS = frozenset({"sig", "key", "pass", "pw"})


def is_secret_key(key: str) -> bool:
    """Return whether the query key ``key`` of a database URL holds a secret."""
    name = key.strip().lower().replace("-", "_")
    return name in _SECRET_KEYS or any(part in name for part in _SECRET_PARTS)


@dataclass(frozen=True)
class ParsedURL:
    """The parts of a database URL (values unquoted, as SQLAlchemy's ``URL``)."""

    drivername: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: dict[str, str | list[str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ParsedURL({self.render(hide_password=True)!r})"

    def render(self, hide_password: bool = True) -> str:
        """The URL as text, as ``URL.render_as_string`` writes it.

        ``hide_password`` masks the userinfo password and, unlike SQLAlchemy, the value of
        every secret query key (:func:`is_secret_key`) too.
        """
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + (MASK if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            pairs = []
            for key in sorted(self.query):
                value = self.query[key]
                hide = hide_password and is_secret_key(key)
                for item in [value] if isinstance(value, str) else value:
                    pairs.append(f"{quote_plus(key)}={MASK if hide else quote_plus(item)}")
            text += "?" + "&".join(pairs)
        return text


def parse_url(url: str) -> ParsedURL | None:
    """Parse ``url`` into the parts ``sqlalchemy.engine.make_url`` gives; ``None`` if it cannot.

    Uses the standard library's :func:`urllib.parse.urlsplit`; user name, password and
    database are unquoted, repeated query keys become lists.
    """
    scheme, sep, _rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    query: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(parts.query):
        if key in query:
            previous = query[key]
            query[key] = [*([previous] if isinstance(previous, str) else previous), value]
        else:
            query[key] = value
    has_user = "@" in parts.netloc
    username = unquote(parts.username) if has_user and parts.username is not None else None
    password = unquote(parts.password) if has_user and parts.password is not None else None
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else None
    host_and_port = parts.netloc.rpartition("@")[2]
    # urlsplit lower-cases host names; SQLAlchemy keeps them as written (IPv6 aside).
    host = parts.hostname if host_and_port.startswith("[") else host_and_port.split(":", 1)[0]
    return ParsedURL(
        drivername=scheme,
        username=username,
        password=password,
        host=host or None,
        port=port,
        database=database,
        query=query,
    )


def masked_url(url: str) -> str:
    """Return ``url`` for display: every secret replaced by ``***``.

    The userinfo password and the values of secret query keys (:func:`is_secret_key`)
    are masked; a URL that cannot be parsed is shown as ``<unparsable URL>``, since
    where its secrets are cannot be told.

    Parameters
    ----------
    url : str
        A SQLAlchemy-style database URL.

    Returns
    -------
    str
    """
    parsed = parse_url(url)
    return parsed.render(hide_password=True) if parsed is not None else "<unparsable URL>"


def _secret_values(url: str) -> set[str]:
    """The secrets in ``url``, as written and unquoted, found even when parsing fails."""
    values: set[str] = set()
    _scheme, _sep, rest = url.partition("://")
    head, _q, query = rest.partition("?")
    # The userinfo password: between the first ':' of the userinfo and its last '@'.
    userinfo, at, _host = head.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and "/" not in user:
        values.add(password)
    for raw in re.split(r"[&;]", query):
        key, eq, value = raw.partition("=")
        if eq and is_secret_key(unquote(key)):
            values.add(value)
    parsed = parse_url(url)
    if parsed is not None:
        if parsed.password:
            values.add(parsed.password)
        for key, item in parsed.query.items():
            if is_secret_key(key):
                values.update([item] if isinstance(item, str) else item)
    values |= {unquote(v) for v in values} | {quote_plus(v) for v in values}
    return {v for v in values if v}


def redact(text: str, url: str | None) -> str:
    """Return ``text`` with every secret of ``url`` replaced by ``***``.

    For text fedsage did not compose, such as a driver's error message, which may echo
    part of the connection string.

    Parameters
    ----------
    text : str
        The text to clean.
    url : str or None
        The URL whose secrets must not appear.

    Returns
    -------
    str
    """
    if not url:
        return text
    for secret in sorted(_secret_values(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
