"""``fedsage demo``: the main job, end to end, with progress."""

from __future__ import annotations

import argparse

from ._common import handle_errors

_STEPS = {
    "data": "Load sample data into the embedded warehouse, read IRIS through DbConnection",
    "runtime": "Prepare the scikit-learn runtime",
    "train": "Train the SageMaker script (streamed channels)",
    "deploy": "Deploy the model to a local endpoint",
    "predict": "Predict three rows",
    "cleanup": "Delete the endpoint",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage demo`` command's parser."""
    parser.description = demo.__doc__
    parser.set_defaults(func=demo, parser=parser)
    parser.add_argument("--framework-version", default=None,
                        help="Runtime to train and serve on (default 0.23-1).")
    parser.add_argument("--keep-endpoint", action="store_true",
                        help="Leave the endpoint running afterwards.")


def demo(args: argparse.Namespace) -> None:
    """Run the main job on the embedded default: data -> train -> deploy -> predict."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..demo import run_demo

    keep_endpoint: bool = args.keep_endpoint
    console = Console()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(step: str, detail: str) -> None:
            label = _STEPS.get(step, step)
            if detail == "start":
                tasks[step] = progress.add_task(label, total=1)
            elif detail == "done":
                progress.update(tasks[step], completed=1, description=f"[green]✓[/] {label}")
            else:
                progress.update(tasks[step], description=f"{label}: [dim]{detail}[/]")

        with handle_errors():
            result = run_demo(
                framework_version=args.framework_version,
                keep_endpoint=keep_endpoint,
                progress=report,
            )

    table = Table(title="fedsage demo", show_header=False)
    table.add_row("training job", result.job_name)
    table.add_row("framework version", result.framework_version)
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.3f}")
    table.add_row("endpoint", result.endpoint_name + ("" if keep_endpoint else " (deleted)"))
    table.add_row("request (text/csv)", result.request.strip().replace("\n", " | "))
    table.add_row("prediction (application/json)", result.prediction.strip())
    table.add_row("total time", f"{sum(result.timings.values()):.1f} s")
    console.print(table)
