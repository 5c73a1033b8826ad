"""Helpers every sub-command shares: the consoles, and one red line for expected failures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import FedsageError

if TYPE_CHECKING:
    from ..backends import Backend

console = Console()
err_console = Console(stderr=True)


def fail(message: object) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr and return the ``typer.Exit(1)`` to raise.

    The message is printed as it is, never read as markup: names and values in it
    (``list[str]``, ``[/]``) are shown, not swallowed or turned into a crash.
    """
    err_console.print(Text.assemble(("error:", "bold red"), " ", str(message)),
                      highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a :class:`FedsageError` into one red line on stderr and exit code 1."""
    try:
        yield
    except FedsageError as exc:
        raise fail(exc) from exc


def format_time(value: object) -> str:
    """A short local time for tables."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def mode_option(app: typer.Typer, command: str) -> Callable[[], Backend]:
    """Give ``app`` a ``--mode`` option; return a function that builds its backend.

    The backend is built on first use, so ``--help`` never imports boto3 or the SDK.
    """
    chosen: dict[str, str | None] = {"mode": None}

    @app.callback()
    def _options(
        mode: str = typer.Option(
            None, "--mode", help="local or aws (default: FEDSAGE_MODE, else local)."
        ),
    ) -> None:
        chosen["mode"] = mode

    def backend() -> Backend:
        from .. import backends

        return backends.get(chosen["mode"], caller=f"fedsage {command}")

    return backend


def print_records(headers: list[str], rows: list[list[str]], keep: tuple[int, ...] = (0,)) -> None:
    """Print rows as a table whose ``keep`` columns are never cut or wrapped.

    Names and URLs are what people copy into the next command.  When the kept columns do
    not fit the terminal beside the others, every row is printed as a block instead: the
    kept values on lines of their own, the other fields after them.
    """
    widths = {
        k: max([len(Text.from_markup(r[k]).plain) for r in rows] + [len(headers[k])])
        for k in keep
    }
    others = len(headers) - len(keep)
    needed = sum(widths.values()) + 3 * len(headers) + 1 + 6 * others
    if needed <= console.width:
        table = Table(*headers)
        for index, column in enumerate(table.columns):
            if index in widths:
                column.no_wrap, column.overflow, column.min_width = True, "ignore", widths[index]
            else:
                column.overflow = "fold"
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    for row in rows:
        for index in keep:
            line = row[index] if index == keep[0] else f"  {headers[index]}: {row[index]}"
            console.print(line, soft_wrap=True, crop=False, highlight=False)
        pairs = enumerate(zip(headers, row, strict=True))
        rest = [f"{h}: {v}" for i, (h, v) in pairs if i not in widths and v]
        if rest:
            console.print("  " + "  ".join(rest), highlight=False)


def print_json(records: object) -> None:
    """Print records as JSON (dates as ISO text), the whole of every record."""
    import json

    console.print_json(json.dumps(records, default=str))
