"""``fedsage endpoints ...`` (local endpoints) and ``fedsage serve`` (a foreground model server)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from .._archive import extract_safely
from ..errors import FedsageError
from ..serving import endpoints as api
from ..serving.supervisor import DEFAULT_MAX_BODY, ServerConfig, is_loopback_host, serve
from ._common import console, err_console, fail

app = typer.Typer(help="Endpoints: list, describe, show logs, delete.", no_args_is_help=True)

_MODE: dict[str, str | None] = {"mode": None}


@app.callback()
def _options(
    mode: str = typer.Option(
        None, "--mode", help="local or aws (default: FEDSAGE_MODE, else local)."
    ),
) -> None:
    _MODE["mode"] = mode


def _aws_backend() -> Any:
    """The aws backend when aws mode is asked for, else ``None`` (local endpoints)."""
    from ..dwc_sagemaker import MODE_ENV, DwcSagemaker

    mode = _MODE["mode"] or os.environ.get(MODE_ENV) or "local"
    if mode == "local":
        return None
    return DwcSagemaker(mode=mode)._backend


def _aws_list(backend: Any) -> None:
    table = Table("Name", "Status", "Created")
    for row in backend.list_endpoints():
        created = row.get("CreationTime")
        table.add_row(row["EndpointName"], row["EndpointStatus"], str(created or ""))
    console.print(table)


@app.command("list")
def list_command() -> None:
    """List endpoints (a dead local server shows as Failed)."""
    try:
        backend = _aws_backend()
        if backend is not None:
            _aws_list(backend)
            return
        rows = api.list_endpoints()
    except FedsageError as exc:
        raise fail(exc) from None
    table = Table("Name", "Status", "URL", "Workers", "Runtime", "Created")
    for row in rows:
        local = row["Local"]
        runtime = (local.get("runtime") or {}).get("FrameworkVersion", "")
        created = row["CreationTime"].strftime("%Y-%m-%d %H:%M:%S") if row["CreationTime"] else ""
        status = row["EndpointStatus"]
        color = {"InService": "green", "Failed": "red"}.get(status, "yellow")
        table.add_row(
            row["EndpointName"],
            f"[{color}]{status}[/{color}]",
            local.get("url") or "",
            str(local.get("workers") or ""),
            runtime,
            created,
        )
    console.print(table)


@app.command("describe")
def describe_command(name: str) -> None:
    """Show one endpoint's description."""
    try:
        backend = _aws_backend()
        info = api.describe_endpoint(name) if backend is None else backend.describe_endpoint(name)
    except FedsageError as exc:
        raise fail(exc) from None
    table = Table("Field", "Value", show_header=False)
    for key, value in info.items():
        if key == "Local":
            for sub, subvalue in value.items():
                table.add_row(f"Local.{sub}", str(subvalue))
        else:
            table.add_row(key, str(value))
    console.print(table)


@app.command("logs")
def logs_command(
    name: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Print a local endpoint's server log."""
    try:
        if _aws_backend() is not None:
            raise FedsageError(
                "aws endpoints log to CloudWatch (/aws/sagemaker/Endpoints/NAME); "
                "read them there or with the AWS CLI"
            )
        path = api.endpoint_log(name)
    except FedsageError as exc:
        raise fail(exc) from None
    if not path.exists():
        raise fail(f"endpoint {name!r} has no log yet ({path})")
    with open(path, encoding="utf-8", errors="replace") as handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        while follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.25)


@app.command("delete")
def delete_command(
    name: str = typer.Argument(None, help="The endpoint to delete."),
    all_: bool = typer.Option(False, "--all", help="Delete every local endpoint."),
) -> None:
    """Stop an endpoint's server and remove it (or all of them with --all)."""
    if bool(name) == all_:
        raise fail("give either an endpoint NAME or --all")
    try:
        backend = _aws_backend()
        target: Any = api if backend is None else backend
        names = [e["EndpointName"] for e in target.list_endpoints()] if all_ else [name]
        for one in names:
            target.delete_endpoint(one)
            console.print(f"deleted endpoint {one}")
    except FedsageError as exc:
        raise fail(exc) from None


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
