"""Parse and mask SQLAlchemy-style database URLs without importing SQLAlchemy.

Importing SQLAlchemy costs about a quarter of a second, more than connecting; only the
statement-building methods need it.  :func:`parse_url` follows
``sqlalchemy.engine.url.make_url`` (same pattern, same unquoting, repeated query keys
become lists) and :meth:`ParsedURL.render` follows ``URL.render_as_string``, so
messages read the same as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

__all__ = ["ParsedURL", "parse_url"]

_SCHEME = re.compile(r"^[\w+]+$")


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

    def render(self, hide_password: bool = True) -> str:
        """The URL as text, as ``URL.render_as_string`` writes it."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
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
                for item in [value] if isinstance(value, str) else value:
                    pairs.append(f"{quote_plus(key)}={quote_plus(item)}")
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
