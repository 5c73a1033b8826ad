"""The root ``fedsage`` command and its sub-commands."""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="fedsage",
    help="Train scikit-learn models on Datasphere data; serve them locally, on SageMaker or Kyma.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# (command name, module under fedsage.cli): each module defines a typer ``app``.
_SUBCOMMANDS: list[tuple[str, str]] = [
    ("jobs", "jobs"),
    ("data", "data"),
    ("runtimes", "runtimes"),
    ("kyma", "kyma"),
    ("endpoints", "endpoints"),
]


def _register() -> None:
    for name, module in _SUBCOMMANDS:
        sub = importlib.import_module(f"fedsage.cli.{module}").app
        app.add_typer(sub, name=name)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show fedsage's log messages."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


_register()


def _register_commands() -> None:
    from .demo import demo
    from .endpoints import serve_command

    app.command("demo")(demo)
    app.command("serve")(serve_command)


_register_commands()


def main() -> None:
    """Entry point of the ``fedsage`` console script."""
    app()
