"""``fedsage data``: look at and export data through :class:`~fedsage.data.DbConnection`."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import FedsageError
from ._common import command, echo, fail, group, handle_errors, number, print_records, warn

HELP = "Browse and export data: Datasphere (config.json), a SQL URL or the embedded warehouse."


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None,
                        help="config.json path or a SQLAlchemy URL (default ./config.json).")


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage data`` group's parser."""
    commands = group(parser, HELP)
    _config_option(command(commands, "views", views))
    _config_option(command(commands, "tables", tables))
    described = command(commands, "describe", describe)
    described.add_argument("name")
    _config_option(described)
    first = command(commands, "head", head)
    first.add_argument("name")
    first.add_argument("--rows", "-n", type=number(int, minimum=1), default=10,
                       help="Rows to show, at least 1.")
    _config_option(first)
    exported = command(commands, "export", export)
    exported.add_argument("query")
    exported.add_argument("--to", type=Path, required=True, help="The file to write.")
    exported.add_argument("--format", dest="file_format", default="csv", help="csv or parquet.")
    _config_option(exported)
    command(commands, "samples", samples)


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
            warn(warning.message)
        with db:
            yield db
    except FedsageError as exc:
        raise fail(exc) from None


def _show(rows: list[tuple[Any, ...]], headers: list[str]) -> None:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    print_records([str(h) for h in headers], cells)


def views(args: argparse.Namespace) -> None:
    """List the views of the configured schema."""
    with _connection(args.config) as db:
        rows, headers = db.get_schema_views()
        _show(rows, headers)


def tables(args: argparse.Namespace) -> None:
    """List your own tables."""
    with _connection(args.config) as db:
        rows, headers = db.get_user_tables()
        _show(rows, headers)


def describe(args: argparse.Namespace) -> None:
    """Show the columns of a view or table NAME."""
    with _connection(args.config) as db:
        rows, headers = db.get_view_metadata(args.name)
        if not rows:
            rows, headers = db.get_table_metadata(args.name)
        if not rows:
            raise_missing(args.name)
        _show(rows, headers)


def raise_missing(name: str) -> None:
    """Report an unknown view or table and exit 1."""
    raise fail(f"no view or table named {name!r}")


def head(args: argparse.Namespace) -> None:
    """Show the first rows of a view or table NAME."""
    with _connection(args.config) as db:
        frame = next(iter(db.table(args.name).iter_batches(batch_rows=args.rows)))
        _show([tuple(r.values()) for r in frame.to_pylist()], frame.schema.names)


def export(args: argparse.Namespace) -> None:
    """Export QUERY (a SELECT or a table name) to a file, streaming, with progress."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with _connection(args.config) as db, Progress(
        TextColumn("[bold]export"), BarColumn(), TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(), console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("export", total=None)
        count = db.export(args.query, args.to, args.file_format,
                          progress=lambda done: progress.update(task, completed=done))
        progress.update(task, completed=count)
    echo(f"wrote {count:,} rows to {args.to}")


def samples(args: argparse.Namespace) -> None:
    """Load the sample data sets (IRIS, BREAST_CANCER, SALES) into the embedded warehouse."""
    from ..data.samples import load_samples

    with handle_errors():
        names = load_samples()
    echo("loaded: " + ", ".join(names))
