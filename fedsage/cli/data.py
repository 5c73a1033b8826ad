"""``fedsage data``: look at and export data through :class:`~fedsage.data.DbConnection`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from ..errors import FedsageError
from ._common import console, err_console, fail, handle_errors

app = typer.Typer(
    help="Browse and export data: Datasphere (config.json), a SQL URL or the embedded warehouse.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

_CONFIG = typer.Option(None, "--config", "-c",
                       help="config.json path or a SQLAlchemy URL (default ./config.json).")


@contextmanager
def _connection(config: str | None) -> Iterator[Any]:
    from ..data import DbConnection

    try:
        # Configuration warnings (no config.json: the embedded warehouse; ignored keys)
        # become one yellow line each instead of Python's warning format.
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            db = DbConnection(url=config)
        for warning in said:
            err_console.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False)
        with db:
            yield db
    except FedsageError as exc:
        raise fail(exc) from None


def _show(rows: list[tuple[Any, ...]], headers: list[str], title: str) -> None:
    table = RichTable(title=title)
    for header in headers:
        table.add_column(str(header))
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def views(config: str | None = _CONFIG) -> None:
    """List the views of the configured schema."""
    with _connection(config) as db:
        rows, headers = db.get_schema_views()
        _show(rows, headers, title="views")


@app.command()
def tables(config: str | None = _CONFIG) -> None:
    """List your own tables."""
    with _connection(config) as db:
        rows, headers = db.get_user_tables()
        _show(rows, headers, title="tables")


@app.command()
def describe(name: str, config: str | None = _CONFIG) -> None:
    """Show the columns of a view or table NAME."""
    with _connection(config) as db:
        rows, headers = db.get_view_metadata(name)
        if not rows:
            rows, headers = db.get_table_metadata(name)
        if not rows:
            raise_missing(name)
        _show(rows, headers, title=name)


def raise_missing(name: str) -> None:
    """Report an unknown view or table and exit 1."""
    raise fail(f"no view or table named {name!r}")


@app.command()
def head(name: str, rows: int = typer.Option(10, "--rows", "-n", min=1),
         config: str | None = _CONFIG) -> None:
    """Show the first rows of a view or table NAME."""
    with _connection(config) as db:
        frame = next(iter(db.table(name).iter_batches(batch_rows=rows)))
        _show([tuple(r.values()) for r in frame.to_pylist()], frame.schema.names, title=name)


@app.command()
def export(query: str, to: Path = typer.Option(..., "--to", help="The file to write."),
           file_format: str = typer.Option("csv", "--format", help="csv or parquet."),
           config: str | None = _CONFIG) -> None:
    """Export QUERY (a SELECT or a table name) to a file, streaming, with progress."""
    with _connection(config) as db, Progress(
        TextColumn("[bold]export"), BarColumn(), TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(), console=err_console,
    ) as progress:
        task = progress.add_task("export", total=None)
        count = db.export(query, to, file_format,
                          progress=lambda done: progress.update(task, completed=done))
        progress.update(task, completed=count)
    console.print(f"wrote {count:,} rows to {to}")


@app.command()
def samples() -> None:
    """Load the sample data sets (IRIS, BREAST_CANCER, SALES) into the embedded warehouse."""
    from ..data.samples import load_samples

    with handle_errors():
        names = load_samples()
    console.print("loaded: " + ", ".join(names))
