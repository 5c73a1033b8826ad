"""``fedsage endpoints ...`` (local endpoints) and ``fedsage serve`` (a foreground model server)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    add_mode_option,
    backend,
    command,
    echo,
    fail,
    format_time,
    group,
    handle_errors,
    print_json,
    print_pairs,
    print_records,
)

HELP = "Endpoints: list, describe, show logs, delete."

_STATUS_COLOUR = {"InService": "green", "Failed": "red"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage endpoints`` group's parser."""
    add_mode_option(parser)
    commands = group(parser, HELP)
    listing = command(commands, "list", list_command)
    listing.add_argument("--output", "-o", default="table", help="table or json (whole records).")
    command(commands, "describe", describe_command).add_argument("name")
    logs = command(commands, "logs", logs_command)
    logs.add_argument("name")
    logs.add_argument("--follow", "-f", action="store_true", help="Keep printing new lines.")
    delete = command(commands, "delete", delete_command)
    delete.add_argument("name", nargs="?", default=None, help="The endpoint to delete.")
    delete.add_argument("--all", dest="all_", action="store_true", help="Delete every endpoint.")


def list_command(args: argparse.Namespace) -> None:
    """List endpoints, oldest first (a local endpoint whose server died shows as Failed).

    Local mode also shows each runtime's warm parent: the process that keeps the
    runtime's libraries imported and forks new endpoints' model processes; it stops
    when its last endpoint is deleted.
    """
    with handle_errors():
        rows, warm = _listing(args)
    if args.output == "json":
        print_json(rows)
        return
    # Local endpoints carry where they listen and what runs them; show it when present.
    local = any("Local" in row for row in rows)
    headers = ["Name", "Status", *(["URL", "Workers", "Runtime"] if local else []), "Created"]
    cells = []
    for row in rows:
        line = [row["EndpointName"], row["EndpointStatus"]]
        if local:
            info = row.get("Local") or {}
            line += [
                info.get("url") or "",
                str(info.get("workers") or ""),
                (info.get("runtime") or {}).get("FrameworkVersion", ""),
            ]
        cells.append([*line, format_time(row.get("CreationTime"))])
    print_records(
        headers,
        cells,
        keep=(0, 2) if local else (0,),
        colour=lambda column, value: _STATUS_COLOUR.get(value, "yellow") if column == 1 else None,
    )
    for parent in warm:
        echo(
            f"warm parent of runtime {parent['Runtime'] or '?'}: pid {parent['Pid']}, "
            f"{parent['Python']} (forks new endpoints' model processes; stops with its "
            "last endpoint)"
        )


def _listing(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The endpoints and warm parents of ``--mode``'s backend.

    Local mode reads them from the registry as :class:`~fedsage.backends.local.LocalBackend`
    does, without importing the backends (training, storage, channels): they are most of
    this command's start-up.
    """
    from .._validation import resolve_mode

    if resolve_mode(args.mode, "fedsage endpoints") == "local":
        from ..serving import endpoints, warm

        return endpoints.list_endpoints(), warm.list_warm_parents()
    chosen = backend(args, "endpoints")
    return chosen.list_endpoints(), chosen.list_warm_parents()


def describe_command(args: argparse.Namespace) -> None:
    """Show one endpoint's description."""
    with handle_errors():
        info = backend(args, "endpoints").describe_endpoint(args.name)
    pairs: list[tuple[str, str]] = []
    for key, value in info.items():
        if isinstance(value, dict):
            pairs += [(f"{key}.{sub}", str(subvalue)) for sub, subvalue in value.items()]
        else:
            pairs.append((key, str(value)))
    print_pairs(pairs)


def logs_command(args: argparse.Namespace) -> None:
    """Print an endpoint's log (local: the server log; aws: CloudWatch)."""
    with handle_errors():
        for line in backend(args, "endpoints").endpoint_logs(args.name, follow=args.follow):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def delete_command(args: argparse.Namespace) -> None:
    """Delete an endpoint and stop what it runs (or all of them with --all)."""
    if bool(args.name) == args.all_:
        raise fail("give either an endpoint NAME or --all")
    with handle_errors():
        chosen = backend(args, "endpoints")
        names = [e["EndpointName"] for e in chosen.list_endpoints()] if args.all_ else [args.name]
        for one in names:
            chosen.delete_endpoint(one)
            echo(f"deleted endpoint {one}")


def configure_serve(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage serve`` command's parser."""
    from pathlib import Path

    from ..serving._worker.fedsage_worker import DEFAULT_MAX_BODY  # no numpy, no supervisor
    from ._common import number

    parser.description = serve_command.__doc__
    parser.set_defaults(func=serve_command, parser=parser)
    add = parser.add_argument
    add("model", type=Path, help="A model folder or model.tar.gz.")
    add("--host", default="127.0.0.1",
        help="Address to listen on. On loopback only requests for localhost, 127.0.0.1, "
        "[::1] or this host are answered; any other address (0.0.0.0) answers every "
        "name, without authentication.")
    add("--port", type=number(int), default=8080, help="Port (0 picks a free one).")
    add("--workers", type=number(int), default=0, help="Worker processes (0: one per core).")
    add("--code-dir", type=Path, default=None,
        help="Folder of the entry point (default: MODEL/code).")
    add("--program", default=None, help="Entry point file, e.g. inference.py.")
    add("--python", type=Path, default=None,
        help="Interpreter for the workers (default: fedsage's).")
    add("--timeout", type=number(float), default=60.0, help="Per-request timeout in seconds.")
    add("--max-body", type=number(int), default=DEFAULT_MAX_BODY,
        help="Largest request body in bytes.")
    add("--debug", action=argparse.BooleanOptionalAction, default=False,
        help="Tracebacks in error bodies, debug logging.")
    add("--preload", action=argparse.BooleanOptionalAction, default=True,
        help="Load the model once and fork the workers from it (--no-preload: every "
        "worker loads its own copy, for models that are not safe to fork).")


def serve_command(args: argparse.Namespace) -> int:
    """Serve a model in the foreground with SageMaker's inference protocol (Ctrl-C stops)."""
    import logging
    import tempfile
    from pathlib import Path

    from .._archive import extract_safely
    from ..errors import FedsageError
    from ..serving.supervisor import ServerConfig, check_worker_env, is_loopback_host, serve
    from ._common import warn

    model: Path = args.model
    host: str = args.host
    python: Path | None = args.python
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
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
        code = args.code_dir or (model / "code" if (model / "code").is_dir() else model)
        config = ServerConfig(
            model_dir=str(model.resolve()),
            python=str(python or sys.executable),
            code_dir=str(Path(code).resolve()),
            program=args.program,
            host=host,
            port=args.port,
            workers=args.workers or None,
            timeout=args.timeout,
            max_body=args.max_body,
            debug=args.debug,
            preload=args.preload,
            warm=True,
            runtime="host" if python is None else "",
        )
        try:
            check_worker_env(config.env)
        except FedsageError as exc:
            raise fail(exc) from None
        if not is_loopback_host(host):
            warn(
                f"{host or 'every address'} is not a loopback address: the endpoint has "
                "no authentication, so anyone who can reach this machine on port "
                f"{args.port} can call it. Serve on 127.0.0.1 (the default) and put an "
                "authenticating proxy in front to expose it."
            )
        try:
            code_ = serve(config)
        except OSError as exc:
            message = f"cannot listen on {host}:{args.port}: {exc.strerror}"
            raise fail(FedsageError(message)) from None
    return int(code_)
