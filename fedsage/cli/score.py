"""``fedsage score``: a table, query or file -> a model -> predictions in a table or file."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from ..errors import FedsageError
from ._common import echo, fail, number, warn

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


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage score`` command's parser."""
    parser.description = score.__doc__
    parser.set_defaults(func=score, parser=parser)
    add = parser.add_argument
    add("model",
        help="A training job name (its model is served for this run) or an endpoint name.")
    add("--table", default=None, help="Score this table or view.")
    add("--query", default=None, help="Score the rows of this SELECT.")
    add("--file", type=Path, default=None, help="Score a .csv (with header) or .parquet file.")
    add("--to-table", default=None, help="Write the predictions to this table.")
    add("--to-file", type=Path, default=None, help="Write them to a .csv or .parquet file.")
    add("--keep", default=None, help="Columns written beside the predictions, e.g. ID,REGION.")
    add("--features", default=None,
        help="Columns sent to the model, in its order (default: all not kept).")
    add("--if-exists", default="fail", help="fail, replace or append.")
    add("--content-type", default=None,
        help="text/csv, application/json or application/x-npy (default: npy for a model "
        "with the image's default input_fn and numeric features, else text/csv).")
    add("--accept", default=None,
        help="The answer type to ask for (default: the model's default).")
    add("--workers", type=number(int), default=None,
        help="Model server workers (default: one per core).")
    add("--batch-rows", type=number(int), default=50_000,
        help="Rows per request (fewer when over --max-payload).")
    add("--max-payload", type=number(float), default=6.0, help="Largest request in MB.")
    add("--prediction-column", default="prediction", help="Name of the prediction column.")
    add("--config", "-c", default=None,
        help="config.json path or a SQLAlchemy URL (default ./config.json).")
    add("--quiet", "-q", action="store_true", help="No progress display.")


def score(args: argparse.Namespace) -> int | None:
    """Score a table, query or file with MODEL and write the predictions in one commit."""
    model: str = args.model
    table, query, file = args.table, args.query, args.file
    to_table, to_file, if_exists = args.to_table, args.to_file, args.if_exists
    source = _one({"--table": table, "--query": query, "--file": file}, "input")
    sink = _one({"--to-table": to_table, "--to-file": to_file}, "target")
    if if_exists not in _IF_EXISTS:
        raise fail(f"--if-exists must be one of {', '.join(_IF_EXISTS)}; got {if_exists!r}")
    keep_columns = _split(args.keep, "--keep")
    chosen = _split(args.features, "--features")
    db: Any = None
    try:
        from ..dwc_sagemaker import DwcSagemaker

        needs_db = source != "--file" or sink == "--to-table"
        if needs_db:
            from ..data import DbConnection

            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                db = DbConnection(url=args.config)
            for warning in said:
                warn(warning.message)
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
            content_type=args.content_type,
            accept=args.accept,
            if_exists=if_exists,
            workers=args.workers,
            batch_rows=args.batch_rows,
            max_payload=args.max_payload,
            prediction_column=args.prediction_column,
            connection=db,
            progress=not args.quiet,
        )
    except FedsageError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("interrupted: nothing was written; the target is as it was\n")
        return 130
    finally:
        if db is not None:
            db.close()
    echo(
        f"wrote {summary.rows_written:,} rows to {summary.target} in {summary.seconds:.1f}s "
        f"({summary.rows_per_second:,.0f} rows/s; columns: {', '.join(summary.columns)}; "
        f"requests {summary.content_type}: {summary.content_type_reason})"
    )
    return None
