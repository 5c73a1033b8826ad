"""The root ``fedsage`` command and its sub-commands, each imported only when it runs.

``fedsage --help`` needs only the names and one-line helps below, and ``fedsage
endpoints list`` only the ``endpoints`` module: a sub-command's module (and what it
imports: the runtimes' builder, the data dialects, the serving supervisor ...) is
imported when that sub-command is called or its own help is asked for.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import typer
from typer.core import TyperGroup

# name -> (module under fedsage.cli, attribute, one-line help shown by ``fedsage --help``).
# The attribute is a typer app (a command group) or, for a single command, a function.
# tests/test_cli_startup.py checks that each help is the command's own.
LAZY: dict[str, tuple[str, str, str]] = {
    "demo": (
        "demo",
        "demo",
        "Run the main job on the embedded default: data -> train -> deploy -> predict.",
    ),
    "serve": (
        "endpoints",
        "serve_command",
        "Serve a model in the foreground with SageMaker's inference protocol (Ctrl-C stops).",
    ),
    "jobs": ("jobs", "app", "Training jobs: list, describe, logs, stop."),
    "data": (
        "data",
        "app",
        "Browse and export data: Datasphere (config.json), a SQL URL or the embedded warehouse.",
    ),
    "runtimes": (
        "runtimes",
        "app",
        "Per-framework_version runtimes (the image's Python and libraries, without Docker).",
    ),
    "kyma": ("kyma", "app", "Kyma deployments (SAP BTP Kyma, or local replicas)."),
    "endpoints": ("endpoints", "app", "Endpoints: list, describe, show logs, delete."),
    "score": (
        "score",
        "score",
        "Score a table, query or file with MODEL and write the predictions in one commit.",
    ),
}


def load_command(name: str) -> Any:
    """The click command of the sub-command ``name`` (its module imported now)."""
    module, attribute, _ = LAZY[name]
    target = getattr(importlib.import_module(f"fedsage.cli.{module}"), attribute)
    if not isinstance(target, typer.Typer):
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        target = single
    else:
        target.info.name = name
        target._add_completion = False  # the root offers no completion either
    command = typer.main.get_command(target)
    command.name = name
    return command


def _plain_values_without_pydantic() -> None:
    """Let typer hand plain values over as click made them, without pydantic.

    typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``, built on first
    use, and importing pydantic is most of a short command's start-up (``fedsage
    endpoints list`` spent twice as long in it as in everything else; ``fedsage data
    export`` 0.13 s for its ``--to`` path).  A text value needs no coercion: click hands
    it over as ``str``, which is what the adapter returns; a flag arrives as ``bool``; a
    ``Path`` parameter arrives as text and becomes a ``pathlib.Path``.  Parameters of
    these types, or the same with ``| None``, take that way.  Numbers keep the adapter
    (typer 0.29 leaves their parsing and ``min``/``max`` checks to it), as does every
    other type.  A typer without these internals is left alone.
    """
    try:
        from typer import core as typer_core
        from typer._coercion import RuntimeParam
    except ImportError:
        return
    build = getattr(typer_core, "build_runtime_param", None)
    if build is None or getattr(build, "fedsage_plain", False):
        return
    from dataclasses import dataclass
    from pathlib import Path
    from types import NoneType, UnionType
    from typing import Union, get_args, get_origin

    plain = (str, bool, Path)

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        kind: type = str

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind is Path:
                return value if isinstance(value, Path) else Path(value)
            if isinstance(value, self.kind):
                return value
            raise typer.BadParameter(
                f"Value {value!r} is not a valid {self.kind.__name__}.", ctx=ctx, param=param
            )

    def plain_kind(annotation: Any) -> type | None:
        if get_origin(annotation) in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not NoneType]
            annotation = members[0] if len(members) == 1 else None
        return annotation if annotation in plain else None

    def build_runtime_param(descriptor: Any) -> Any:
        kind = plain_kind(descriptor.annotation)
        if kind is not None and descriptor.file_annotation is None:
            return PlainRuntimeParam(
                annotation=descriptor.annotation,
                parameter_info=descriptor.parameter_info,
                kind=kind,
            )
        return build(descriptor)

    build_runtime_param.fedsage_plain = True  # type: ignore[attr-defined]
    typer_core.build_runtime_param = build_runtime_param


_plain_values_without_pydantic()


class LazyGroup(TyperGroup):
    """The root group: sub-commands are imported on first use, not at start-up.

    While the root's help is written, a sub-command is shown by a stand-in that carries
    only its name and help, so ``fedsage --help`` imports none of them.
    """

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*LAZY, *(n for n in super().list_commands(ctx) if n not in LAZY)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY:
            return command
        if self.listing:
            return TyperGroup(name=cmd_name, help=LAZY[cmd_name][2], short_help=LAZY[cmd_name][2])
        command = load_command(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="fedsage",
    cls=LazyGroup,
    help="Train scikit-learn models on Datasphere data; serve them locally, on SageMaker or Kyma.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show fedsage's log messages."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of the ``fedsage`` console script."""
    app()
