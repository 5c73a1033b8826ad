"""A small lexical look at caller SQL: its first keyword and how many statements it has.

Quoted strings, quoted identifiers and comments are skipped, so a ``;`` or a keyword
inside them does not count.  This is a first line of defence for ``execute_query``;
engines that can (PostgreSQL, SQLite, DuckDB's parser) also enforce read-only-ness
themselves.
"""

from __future__ import annotations

import re

__all__ = ["first_keyword", "statement_count"]

_TOKEN = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|;|\w+|\S""",
    re.DOTALL,
)


def _tokens(sql: str) -> list[str]:
    return [t for t in _TOKEN.findall(sql) if not t.startswith(("--", "/*"))]


def first_keyword(sql: str) -> str:
    """Return the first word of ``sql`` in upper case (``''`` when there is none)."""
    for token in _tokens(sql):
        return token.upper() if token[:1].isalpha() else token
    return ""


def statement_count(sql: str) -> int:
    """Return how many non-empty statements ``;`` separates in ``sql``."""
    count, current = 0, False
    for token in _tokens(sql):
        if token == ";":  # noqa: S105 - a statement separator, not a password
            count += current
            current = False
        else:
            current = True
    return count + current
