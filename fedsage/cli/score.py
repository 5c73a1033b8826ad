"""``fedsage score``: a table, query or file -> a model -> predictions in a table or file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

from ..errors import FedsageError
from ._common import console, err_console, fail

_IF_EXISTS = ("fail", "replace", "append")


def _split(value: str | None, option: str) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise fail(f"{option} takes column names separated by commas; got {value!r}")
    return names


def _one(option_values: dict[str, Any], what: str) -> str:
    given = [name for name, value in option_values.items() if value is not None]
    if len(given) != 1:
        choices = " or ".join(option_values)
        raise fail(
            f"give exactly one {what}: {choices}" + (f" (got {', '.join(given)})" if given else "")
        )
    return given[0]


def score(
    model: str = typer.Argument(
        ..., help="A training job name (its model is served for this run) or an endpoint name."
    ),
    table: str | None = typer.Option(None, "--table", help="Score this table or view."),
    query: str | None = typer.Option(None, "--query", help="Score the rows of this SELECT."),
    file: Path | None = typer.Option(
        None, "--file", help="Score a .csv (with header) or .parquet file."
    ),
    to_table: str | None = typer.Option(
        None, "--to-table", help="Write the predictions to this table."
    ),
    to_file: Path | None = typer.Option(
        None, "--to-file", help="Write them to a .csv or .parquet file."
    ),
    keep: str | None = typer.Option(
        None, "--keep", help="Columns written beside the predictions, e.g. ID,REGION."
    ),
    features: str | None = typer.Option(
        None, "--features", help="Columns sent to the model, in its order (default: all not kept)."
    ),
    if_exists: str = typer.Option("fail", "--if-exists", help="fail, replace or append."),
    content_type: str | None = typer.Option(
        None,
        "--content-type",
        help="text/csv, application/json or application/x-npy (default: npy for a model "
        "with the image's default input_fn and numeric features, else text/csv).",
    ),
    accept: str | None = typer.Option(
        None, "--accept", help="The answer type to ask for (default: the model's default)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Model server workers (default: one per core)."
    ),
    batch_rows: int = typer.Option(
        50_000, "--batch-rows", help="Rows per request (fewer when over --max-payload)."
    ),
    max_payload: float = typer.Option(6.0, "--max-payload", help="Largest request in MB."),
    prediction_column: str = typer.Option(
        "prediction", "--prediction-column", help="Name of the prediction column."
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="config.json path or a SQLAlchemy URL (default ./config.json)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Score a table, query or file with MODEL and write the predictions in one commit."""
    source = _one({"--table": table, "--query": query, "--file": file}, "input")
    sink = _one({"--to-table": to_table, "--to-file": to_file}, "target")
    if if_exists not in _IF_EXISTS:
        raise fail(f"--if-exists must be one of {', '.join(_IF_EXISTS)}; got {if_exists!r}")
    keep_columns = _split(keep, "--keep")
    chosen = _split(features, "--features")
    db: Any = None
    try:
        from ..dwc_sagemaker import DwcSagemaker

        needs_db = source != "--file" or sink == "--to-table"
        if needs_db:
            from ..data import DbConnection

            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                db = DbConnection(url=config)
            for warning in said:
                err_console.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False)
        if source == "--table":
            data: Any = db.table(table)
        elif source == "--query":
            data = db.query(query)
        else:
            data = file
        target: Any = to_table if sink == "--to-table" else to_file
        dwc = DwcSagemaker()
        summary = dwc.batch_transform(
            model,
            data,
            target,
            keep_columns=keep_columns,
            features=chosen,
            content_type=content_type,
            accept=accept,
            if_exists=if_exists,
            workers=workers,
            batch_rows=batch_rows,
            max_payload=max_payload,
            prediction_column=prediction_column,
            connection=db,
            progress=not quiet,
        )
    except FedsageError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing was written; the target is as it was")
        raise typer.Exit(code=130) from None
    finally:
        if db is not None:
            db.close()
    console.print(
        f"wrote {summary.rows_written:,} rows to {summary.target} in {summary.seconds:.1f}s "
        f"({summary.rows_per_second:,.0f} rows/s; columns: {', '.join(summary.columns)}; "
        f"requests {summary.content_type}: {summary.content_type_reason})"
    )
