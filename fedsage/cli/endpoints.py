"""``fedsage endpoints ...`` (local endpoints) and ``fedsage serve`` (a foreground model server)."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import typer

from ..errors import FedsageError
from ..serving._worker.fedsage_worker import DEFAULT_MAX_BODY  # no numpy, no supervisor
from ._common import (
    console,
    err_console,
    fail,
    format_time,
    handle_errors,
    mode_option,
    print_json,
    print_records,
)

app = typer.Typer(help="Endpoints: list, describe, show logs, delete.", no_args_is_help=True)
_backend = mode_option(app, "endpoints")

_STATUS_COLOR = {"InService": "green", "Failed": "red"}


@app.command("list")
def list_command(
    output: str = typer.Option("table", "--output", "-o", help="table or json (whole records)."),
) -> None:
    """List endpoints, oldest first (a local endpoint whose server died shows as Failed).

    Local mode also shows each runtime's warm parent: the process that keeps the
    runtime's libraries imported and forks new endpoints' model processes; it stops
    when its last endpoint is deleted.
    """
    with handle_errors():
        backend = _backend()
        rows = backend.list_endpoints()
        warm = backend.list_warm_parents()
    if output == "json":
        print_json(rows)
        return
    # Local endpoints carry where they listen and what runs them; show it when present.
    local = any("Local" in row for row in rows)
    headers = ["Name", "Status", *(["URL", "Workers", "Runtime"] if local else []), "Created"]
    cells = []
    for row in rows:
        status = row["EndpointStatus"]
        color = _STATUS_COLOR.get(status, "yellow")
        line = [row["EndpointName"], f"[{color}]{status}[/{color}]"]
        if local:
            info = row.get("Local") or {}
            line += [
                info.get("url") or "",
                str(info.get("workers") or ""),
                (info.get("runtime") or {}).get("FrameworkVersion", ""),
            ]
        cells.append([*line, format_time(row.get("CreationTime"))])
    print_records(headers, cells, keep=(0, 2) if local else (0,))
    for parent in warm:
        console.print(
            f"warm parent of runtime {parent['Runtime'] or '?'}: pid {parent['Pid']}, "
            f"{parent['Python']} (forks new endpoints' model processes; stops with its "
            "last endpoint)",
            highlight=False,
            soft_wrap=True,
        )


@app.command("describe")
def describe_command(name: str) -> None:
    """Show one endpoint's description."""
    from rich.table import Table

    with handle_errors():
        info = _backend().describe_endpoint(name)
    table = Table("Field", "Value", show_header=False)
    for key, value in info.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                table.add_row(f"{key}.{sub}", str(subvalue))
        else:
            table.add_row(key, str(value))
    console.print(table)


@app.command("logs")
def logs_command(
    name: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Print an endpoint's log (local: the server log; aws: CloudWatch)."""
    with handle_errors():
        for line in _backend().endpoint_logs(name, follow=follow):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


@app.command("delete")
def delete_command(
    name: str = typer.Argument(None, help="The endpoint to delete."),
    all_: bool = typer.Option(False, "--all", help="Delete every endpoint."),
) -> None:
    """Delete an endpoint and stop what it runs (or all of them with --all)."""
    if bool(name) == all_:
        raise fail("give either an endpoint NAME or --all")
    with handle_errors():
        backend = _backend()
        names = [e["EndpointName"] for e in backend.list_endpoints()] if all_ else [name]
        for one in names:
            backend.delete_endpoint(one)
            console.print(f"deleted endpoint {one}")


def serve_command(
    model: Path = typer.Argument(..., help="A model folder or model.tar.gz."),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. On loopback only requests for localhost, 127.0.0.1, "
        "[::1] or this host are answered; any other address (0.0.0.0) answers every "
        "name, without authentication.",
    ),
    port: int = typer.Option(8080, help="Port (0 picks a free one)."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    code_dir: Path = typer.Option(None, help="Folder of the entry point (default: MODEL/code)."),
    program: str = typer.Option(None, help="Entry point file, e.g. inference.py."),
    python: Path = typer.Option(None, help="Interpreter for the workers (default: fedsage's)."),
    timeout: float = typer.Option(60.0, help="Per-request timeout in seconds."),
    max_body: int = typer.Option(DEFAULT_MAX_BODY, help="Largest request body in bytes."),
    debug: bool = typer.Option(False, help="Tracebacks in error bodies, debug logging."),
    preload: bool = typer.Option(
        True,
        help="Load the model once and fork the workers from it (--no-preload: every "
        "worker loads its own copy, for models that are not safe to fork).",
    ),
) -> None:
    """Serve a model in the foreground with SageMaker's inference protocol (Ctrl-C stops)."""
    from rich.text import Text

    from .._archive import extract_safely
    from ..serving.supervisor import ServerConfig, is_loopback_host, serve

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s supervisor %(levelname)s %(message)s",
        force=True,  # a server's log is its output, whatever the root --verbose said
    )
    with tempfile.TemporaryDirectory(prefix="fedsage-serve-") as tmp:
        try:
            if model.is_file():
                extract_safely(model, Path(tmp) / "model")
                model = Path(tmp) / "model"
            if not model.is_dir():
                raise FedsageError(f"{model} is neither a model folder nor a model.tar.gz")
        except FedsageError as exc:
            raise fail(exc) from None
        code = code_dir or (model / "code" if (model / "code").is_dir() else model)
        config = ServerConfig(
            model_dir=str(model.resolve()),
            python=str(python or sys.executable),
            code_dir=str(Path(code).resolve()),
            program=program,
            host=host,
            port=port,
            workers=workers or None,
            timeout=timeout,
            max_body=max_body,
            debug=debug,
            preload=preload,
            warm=True,
            runtime="host" if python is None else "",
        )
        if not is_loopback_host(host):
            err_console.print(
                Text.assemble(
                    ("warning:", "yellow"),
                    f" {host or 'every address'} is not a loopback address: the endpoint has "
                    "no authentication, so anyone who can reach this machine on port "
                    f"{port} can call it. Serve on 127.0.0.1 (the default) and put an "
                    "authenticating proxy in front to expose it.",
                ),
                highlight=False,
                soft_wrap=True,
            )
        try:
            code_ = serve(config)
        except OSError as exc:
            raise fail(FedsageError(f"cannot listen on {host}:{port}: {exc.strerror}")) from None
    raise typer.Exit(code=code_)
