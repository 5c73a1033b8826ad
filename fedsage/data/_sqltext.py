"""A small lexical look at caller SQL: its first keyword and how many statements it has.

Quoted strings (standard ``'...'``, PostgreSQL's ``E'...'`` with backslash escapes and
dollar-quoted ``$$...$$`` / ``$tag$...$tag$``), quoted identifiers and comments are
skipped, so a ``;`` or a keyword inside them does not count.  This is only the first line
of defence, for clear early messages: a lexer cannot know every engine's quoting, so the
engines themselves enforce one (read-only) statement where they can (see
:mod:`fedsage.data.dialects.base`).
"""

from __future__ import annotations

import re

__all__ = ["first_keyword", "statement_count"]

_TOKEN = re.compile(
    r"""
      [Ee]'(?:[^'\\]|\\.|'')*'                 # E'...': backslash escapes
    | '(?:[^']|'')*'                         # a string
    | "(?:[^"]|"")*"                         # a quoted identifier
    | \$(?P<tag>(?:[^\W\d]\w*)?)\$.*?\$(?P=tag)\$  # $$...$$ and $tag$...$tag$
    | --[^\n]*                               # comments
    | /\*.*?\*/
    | ;
    | \w[\w$]*                               # words (PostgreSQL allows $ inside)
    | \S
    """,
    re.DOTALL | re.VERBOSE,
)


def _tokens(sql: str) -> list[str]:
    tokens = (m.group(0) for m in _TOKEN.finditer(sql))
    return [t for t in tokens if not t.startswith(("--", "/*"))]


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
