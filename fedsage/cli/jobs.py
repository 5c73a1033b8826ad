"""``fedsage jobs``: list, describe, follow and stop training jobs."""

from __future__ import annotations

import argparse
import sys
import time

from ._common import (
    add_mode_option,
    backend,
    command,
    echo,
    format_time,
    group,
    handle_errors,
    print_json,
    print_records,
)

HELP = "Training jobs: list, describe, logs, stop."

_STATUS_COLOUR = {"Completed": "green", "Failed": "red", "Stopped": "yellow"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage jobs`` group's parser."""
    add_mode_option(parser)
    commands = group(parser, HELP)
    listing = command(commands, "list", list_jobs)
    listing.add_argument("--output", "-o", default="table", help="table or json (whole records).")
    command(commands, "describe", describe).add_argument("name")
    logs_parser = command(commands, "logs", logs)
    logs_parser.add_argument("name")
    logs_parser.add_argument(
        "--follow", "-f", action="store_true", help="Keep printing until the job ends."
    )
    command(commands, "stop", stop).add_argument("name")
    command(commands, "metrics", metrics).add_argument("name")


def list_jobs(args: argparse.Namespace) -> None:
    """List training jobs, oldest first."""
    with handle_errors():
        jobs = backend(args, "jobs").list_training_jobs()
    if args.output == "json":
        print_json(jobs)
        return
    rows = []
    for job in jobs:
        rows.append(
            [
                job["TrainingJobName"],
                job["TrainingJobStatus"],
                job.get("SecondaryStatus", ""),
                job.get("AlgorithmSpecification", {}).get("TrainingImage", "").rsplit(":", 1)[-1],
                format_time(job.get("CreationTime")),
                format_time(job.get("TrainingEndTime")),
            ]
        )
    print_records(
        ["name", "status", "secondary", "framework", "created", "ended"],
        rows,
        colour=lambda column, value: _STATUS_COLOUR.get(value, "cyan") if column == 1 else None,
    )


def describe(args: argparse.Namespace) -> None:
    """Print the DescribeTrainingJob response of NAME as JSON."""
    with handle_errors():
        record = backend(args, "jobs").describe_training_job(args.name)
    if record.get("HyperParameters"):
        from ..training.contract import mask_secrets

        record["HyperParameters"] = mask_secrets(record["HyperParameters"])
    print_json(record)


def logs(args: argparse.Namespace) -> None:
    """Print the log of job NAME."""
    with handle_errors():
        chosen = backend(args, "jobs")
        if args.follow:
            chosen.wait_training_job(args.name, logs="All", raise_on_failure=False)
            return
        for line in chosen.training_log(args.name):
            sys.stdout.write(line + "\n")


def stop(args: argparse.Namespace) -> None:
    """Stop the running job NAME (its status becomes Stopped)."""
    with handle_errors():
        chosen = backend(args, "jobs")
        chosen.stop_training_job(args.name)
        deadline = time.monotonic() + 15
        while not chosen.job_has_ended(args.name) and time.monotonic() < deadline:
            time.sleep(0.1)
        status = chosen.describe_training_job(args.name)["TrainingJobStatus"]
    echo(f"{args.name}: {status}")


def metrics(args: argparse.Namespace) -> None:
    """Print the metric series of job NAME (from its metric_definitions)."""
    with handle_errors():
        points = backend(args, "jobs").training_metrics(args.name)
    rows = [
        [format_time(point.get("Timestamp")), point["MetricName"], f"{point['Value']:g}"]
        for point in points
    ]
    print_records(["time", "metric", "value"], rows, keep=(1, 2))
