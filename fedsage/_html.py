"""Small HTML summaries for notebooks (``_repr_html_``), escaped, without styling libraries."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

__all__ = ["summary_table"]


def summary_table(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table headed by ``title``; every value is escaped and never cut."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(key))}</th>"
        f"<td style='text-align:left'>{html.escape('' if value is None else str(value))}</td></tr>"
        for key, value in rows
    )
    return f"<table><caption>{html.escape(title)}</caption>{body}</table>"
