"""The root ``fedsage`` command and its sub-commands, each imported only when it runs.

``fedsage --help`` needs only the names and one-line helps below, and ``fedsage
endpoints list`` only the ``endpoints`` module: a sub-command's module (and what it
imports: the runtimes' builder, the data dialects, the serving supervisor ...) is
imported when that sub-command is called or its own help is asked for.  The parsers are
argparse's (the standard library), so that starting costs a few milliseconds.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ._common import Parser

HELP = "Train scikit-learn models on Datasphere data; serve them locally, on SageMaker or Kyma."

# name -> (module under fedsage.cli, attribute, one-line help shown by ``fedsage --help``).
# The attribute is a function that fills the sub-command's parser (its options, or for a
# group its commands); tests/test_cli_startup.py checks that each help is the command's own.
LAZY: dict[str, tuple[str, str, str]] = {
    "demo": (
        "demo",
        "configure",
        "Run the main job on the embedded default: data -> train -> deploy -> predict.",
    ),
    "serve": (
        "endpoints",
        "configure_serve",
        "Serve a model in the foreground with SageMaker's inference protocol (Ctrl-C stops).",
    ),
    "jobs": ("jobs", "configure", "Training jobs: list, describe, logs, stop."),
    "data": (
        "data",
        "configure",
        "Browse and export data: Datasphere (config.json), a SQL URL or the embedded warehouse.",
    ),
    "runtimes": (
        "runtimes",
        "configure",
        "Per-framework_version runtimes (the image's Python and libraries, without Docker).",
    ),
    "kyma": ("kyma", "configure", "Kyma deployments (SAP BTP Kyma, or local replicas)."),
    "endpoints": ("endpoints", "configure", "Endpoints: list, describe, show logs, delete."),
    "score": (
        "score",
        "configure",
        "Score a table, query or file with MODEL and write the predictions in one commit.",
    ),
}


def _configure(name: str) -> Callable[[argparse.ArgumentParser], None]:
    module, attribute, _ = LAZY[name]
    configure: Callable[[argparse.ArgumentParser], None] = getattr(
        importlib.import_module(f"fedsage.cli.{module}"), attribute
    )
    return configure


def load_command(name: str) -> argparse.ArgumentParser:
    """The parser of the sub-command ``name`` on its own (its module imported now)."""
    parser = Parser(prog=f"fedsage {name}")
    _configure(name)(parser)
    return parser


def build_parser(command: str | None = None, *, only: bool = False) -> argparse.ArgumentParser:
    """The root parser; only ``command``'s sub-command is filled in (imported).

    With ``only``, the root knows no other sub-command: enough to run ``command``, and
    it saves building parsers that would not be used.
    """
    root = Parser(prog="fedsage", description=HELP)
    root.add_argument("-v", "--verbose", action="store_true", help="Show fedsage's log messages.")
    root.set_defaults(func=None, parser=root)
    commands = root.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name, (_, _, short) in LAZY.items():
        if only and name != command:
            continue
        parser = commands.add_parser(name, help=short, description=short)
        if name == command:
            _configure(name)(parser)
    return root


def _run(argv: list[str]) -> int:
    # The root's only options are flags: its first other word names the sub-command.
    at = next((i for i, word in enumerate(argv) if not word.startswith("-")), len(argv))
    command = argv[at] if at < len(argv) and argv[at] in LAZY else None
    # The root's own help (``fedsage --help endpoints``) lists every sub-command.
    parser = build_parser(command, only=command is not None and "--help" not in argv[:at])
    args = parser.parse_args(argv)
    if args.func is None:  # no command, or a group without its sub-command: its help
        args.parser.print_help()
        return 2
    import logging

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    code: int | None = args.func(args)
    return code or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedsage`` console script.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``fedsage`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 done, 1 a fedsage error (``error: ...`` on stderr), 2 a usage
        error (the usage line and ``fedsage ...: error: ...`` on stderr), 141 when the
        reader of the output went away (``fedsage runtimes list | head -3``), as for a
        program stopped by ``SIGPIPE``, without a traceback.
    """
    try:
        try:
            return _run(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        sys.stderr.write(f"{exc.code}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Aborted!\n")
        return 1
    except BrokenPipeError:
        _drop_stdout()
        return _SIGPIPE_EXIT


_SIGPIPE_EXIT = 128 + 13


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit, which
    would hit the closed pipe again, writes nowhere instead of printing an error."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture)
        pass
    finally:
        os.close(devnull)
