"""``fedsage jobs``: list, describe, follow and stop training jobs."""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.table import Table

from ._common import (
    console,
    format_time,
    handle_errors,
    mode_option,
    print_json,
    print_records,
)

app = typer.Typer(help="Training jobs: list, describe, logs, stop.", no_args_is_help=True)
_backend = mode_option(app, "jobs")

_STATUS_STYLE = {"Completed": "green", "Failed": "red", "Stopped": "yellow"}


@app.command("list")
def list_jobs(
    output: str = typer.Option("table", "--output", "-o", help="table or json (whole records)."),
) -> None:
    """List training jobs, oldest first."""
    with handle_errors():
        jobs = _backend().list_training_jobs()
    if output == "json":
        print_json(jobs)
        return
    rows = []
    for job in jobs:
        status = job["TrainingJobStatus"]
        rows.append(
            [
                job["TrainingJobName"],
                f"[{_STATUS_STYLE.get(status, 'cyan')}]{status}[/]",
                job.get("SecondaryStatus", ""),
                job.get("AlgorithmSpecification", {}).get("TrainingImage", "").rsplit(":", 1)[-1],
                format_time(job.get("CreationTime")),
                format_time(job.get("TrainingEndTime")),
            ]
        )
    print_records(["name", "status", "secondary", "framework", "created", "ended"], rows)


@app.command()
def describe(name: str) -> None:
    """Print the DescribeTrainingJob response of NAME as JSON."""
    with handle_errors():
        record = _backend().describe_training_job(name)
    if record.get("HyperParameters"):
        from ..training.contract import mask_secrets

        record["HyperParameters"] = mask_secrets(record["HyperParameters"])
    console.print_json(json.dumps(record, default=str))


@app.command()
def logs(
    name: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends."),
) -> None:
    """Print the log of job NAME."""
    with handle_errors():
        backend = _backend()
        if follow:
            backend.wait_training_job(name, logs="All", raise_on_failure=False)
            return
        for line in backend.training_log(name):
            sys.stdout.write(line + "\n")


@app.command()
def stop(name: str) -> None:
    """Stop the running job NAME (its status becomes Stopped)."""
    with handle_errors():
        backend = _backend()
        backend.stop_training_job(name)
        deadline = time.monotonic() + 15
        while not backend.job_has_ended(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        status = backend.describe_training_job(name)["TrainingJobStatus"]
    console.print(f"{name}: {status}")


@app.command()
def metrics(name: str) -> None:
    """Print the metric series of job NAME (from its metric_definitions)."""
    with handle_errors():
        points = _backend().training_metrics(name)
    table = Table("time", "metric", "value")
    for point in points:
        stamp = format_time(point.get("Timestamp"))
        table.add_row(stamp, point["MetricName"], f"{point['Value']:g}")
    console.print(table)
