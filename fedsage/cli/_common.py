"""Helpers every sub-command shares: one red line for expected failures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

from ..errors import FedsageError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a :class:`FedsageError` into one red line on stderr and exit code 1."""
    try:
        yield
    except FedsageError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(code=1) from exc


def format_time(value: object) -> str:
    """A short local time for tables."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)
