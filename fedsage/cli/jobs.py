"""``fedsage jobs``: list, describe, follow and stop training jobs."""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.table import Table

from ..backends.base import Backend
from ._common import console, format_time, handle_errors

app = typer.Typer(help="Training jobs: list, describe, logs, stop.", no_args_is_help=True)

_MODE: dict[str, str | None] = {"mode": None}


@app.callback()
def _options(
    mode: str = typer.Option(
        None, "--mode", help="local or aws (default: FEDSAGE_MODE, else local)."
    ),
) -> None:
    _MODE["mode"] = mode

_STATUS_STYLE = {"Completed": "green", "Failed": "red", "Stopped": "yellow"}


def _backend() -> Backend:
    from ..dwc_sagemaker import DwcSagemaker

    return DwcSagemaker(mode=_MODE["mode"])._backend


@app.command("list")
def list_jobs() -> None:
    """List training jobs, oldest first."""
    with handle_errors():
        jobs = _backend().list_training_jobs()
    table = Table("name", "status", "secondary", "framework", "created", "ended")
    for job in jobs:
        status = job["TrainingJobStatus"]
        table.add_row(
            job["TrainingJobName"],
            f"[{_STATUS_STYLE.get(status, 'cyan')}]{status}[/]",
            job.get("SecondaryStatus", ""),
            job.get("AlgorithmSpecification", {}).get("TrainingImage", "").rsplit(":", 1)[-1],
            format_time(job.get("CreationTime")),
            format_time(job.get("TrainingEndTime")),
        )
    console.print(table)


@app.command()
def describe(name: str) -> None:
    """Print the DescribeTrainingJob response of NAME as JSON."""
    with handle_errors():
        record = _backend().describe_training_job(name)
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
        status = backend.describe_training_job(name)["TrainingJobStatus"]
        while status not in ("Stopped", "Completed", "Failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            status = backend.describe_training_job(name)["TrainingJobStatus"]
    console.print(f"{name}: {status}")
