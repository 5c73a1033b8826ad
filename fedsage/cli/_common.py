"""What every sub-command shares: its parser, plain output, and one line for failures.

Nothing here imports rich: ``fedsage --help`` and the list commands print plain text.
The commands that show progress (demo, score, data export, runtimes build) import rich
themselves when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

from ..errors import FedsageError

if TYPE_CHECKING:
    from ..backends import Backend

_ANSI = {"bold red": "1;31", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
# A kept column needs no more than this; every other column gets at least this much.
_MIN_WIDTH = 6
_GAP = "   "


class HelpFormatter(argparse.HelpFormatter):
    """Paragraphs of a description stay paragraphs; options show their default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n\n".join(
            textwrap.fill(" ".join(p.split()), width, initial_indent=indent,
                          subsequent_indent=indent)
            for p in text.strip().split("\n\n")
        )

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):
            # The commands, without the line of the group's own metavar above them.
            return "\n".join(line[2:] for line in text.split("\n")[1:])
        return text

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == [] or default is
                     argparse.SUPPRESS)
        if shown and action.option_strings and "%(default)" not in text:
            text += " [default: %(default)s]"
        return text


class Parser(argparse.ArgumentParser):
    """An argparse parser with click's conventions: ``--help`` only, no abbreviations.

    A usage error prints the usage line, ``PROG: error: MESSAGE`` and where to find the
    help on stderr, and exits with 2.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", False)
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)
        self.add_argument("--help", action="help", help="Show this message and exit.")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse; an unknown argument is an error of the innermost (sub-)command."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nTry '{self.prog} --help' for help.\n")


def group(parser: argparse.ArgumentParser, help: str) -> Any:
    """Make ``parser`` a command group; return the action to add its commands to.

    Called without a sub-command, the group prints its help and exits with 2.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The group's parser (the root's sub-parser of the group's name).
    help : str
        The group's description, shown by its ``--help``.

    Returns
    -------
    argparse._SubParsersAction
        Pass it to :func:`command` for each of the group's commands.
    """
    parser.description = help
    parser.set_defaults(func=None, parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", dest="subcommand")


def command(
    subparsers: Any, name: str, func: Callable[[argparse.Namespace], int | None]
) -> argparse.ArgumentParser:
    """Add the command ``name`` that runs ``func(args)``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What :func:`group` returned.
    name : str
        The command's name.
    func : callable
        Runs the command with the parsed arguments and returns its exit code (``None``:
        0).  Its docstring is the command's help (the first paragraph in the group's
        list).

    Returns
    -------
    argparse.ArgumentParser
        The command's parser, to add its arguments to.
    """
    doc = func.__doc__ or ""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=doc.strip().split("\n\n")[0], description=doc
    )
    parser.set_defaults(func=func, parser=parser)
    return parser


def number(kind: type, minimum: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind`` (int or float), at least ``minimum`` if given.

    Parameters
    ----------
    kind : type
        ``int`` or ``float``.
    minimum : int or float, optional
        The smallest value accepted.

    Returns
    -------
    callable
        Converts the text; a bad one is a usage error naming the option.
    """

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a valid {'integer' if kind is int else 'number'}"
            ) from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is smaller than the minimum {minimum}")
        return value

    convert.__name__ = kind.__name__
    return convert


def usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Report a usage error of the running command (usage line, exit 2)."""
    parser: argparse.ArgumentParser = args.parser
    parser.error(message)


def coloured(text: str, colour: str | None, stream: IO[str]) -> str:
    """``text`` in ``colour`` when ``stream`` is a terminal and NO_COLOR is unset.

    Parameters
    ----------
    text : str
        What to show.
    colour : str or None
        ``red``, ``bold red``, ``green``, ``yellow`` or ``cyan``; ``None``: as it is.
    stream : file
        Where ``text`` goes (its ``isatty`` decides).

    Returns
    -------
    str
        ``text``, in ANSI colour codes or not.
    """
    if not colour or os.environ.get("NO_COLOR") or not _isatty(stream):
        return text
    return f"\x1b[{_ANSI[colour]}m{text}\x1b[0m"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def echo(text: str = "") -> None:
    """Print a line on stdout."""
    sys.stdout.write(text + "\n")


def warn(message: object) -> None:
    """Print ``warning: MESSAGE`` on stderr (yellow in a terminal)."""
    sys.stderr.write(f"{coloured('warning:', 'yellow', sys.stderr)} {message}\n")


def fail(message: object) -> SystemExit:
    """Print ``error: MESSAGE`` on stderr and return the ``SystemExit(1)`` to raise.

    The message is printed as it is: names and values in it (``list[str]``, ``[/]``)
    are shown unchanged.

    Parameters
    ----------
    message : object
        The error (its text).

    Returns
    -------
    SystemExit
        Exit code 1, for ``raise fail(...)``.
    """
    sys.stderr.write(f"{coloured('error:', 'bold red', sys.stderr)} {message}\n")
    sys.stderr.flush()
    return SystemExit(1)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a :class:`FedsageError` into one line on stderr and exit code 1."""
    try:
        yield
    except FedsageError as exc:
        raise fail(exc) from exc


def format_time(value: object) -> str:
    """A short local time for tables."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    """Give a command group the ``--mode`` option that :func:`backend` reads."""
    parser.add_argument(
        "--mode", default=None, help="local or aws (default: FEDSAGE_MODE, else local)."
    )


def backend(args: argparse.Namespace, command: str) -> Backend:
    """The backend ``--mode`` chose, built now (``--help`` never imports boto3)."""
    from .. import backends

    return backends.get(args.mode, caller=f"fedsage {command}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _fit(widths: list[int], keep: Sequence[int], room: int) -> list[int] | None:
    """Column widths within ``room``: kept ones whole, the widest others cut first."""
    if sum(widths) <= room:
        return widths
    fitted = list(widths)
    others = [i for i in range(len(widths)) if i not in keep]
    left = room - sum(widths[i] for i in keep)
    if not others or left < _MIN_WIDTH * len(others):
        return None
    # Water-filling: the others share ``left``; narrow ones keep their width.
    cap = left // len(others)
    while True:
        narrow = [i for i in others if widths[i] <= cap]
        wide = [i for i in others if widths[i] > cap]
        if not wide:
            break
        new_cap = (left - sum(widths[i] for i in narrow)) // len(wide)
        if new_cap == cap:
            break
        cap = new_cap
    for i in others:
        fitted[i] = min(widths[i], cap)
    return fitted


def print_records(
    headers: list[str],
    rows: list[list[str]],
    keep: tuple[int, ...] = (0,),
    colour: Callable[[int, str], str | None] | None = None,
) -> None:
    """Print rows as plain aligned columns whose ``keep`` columns are never cut.

    Names and URLs are what people copy into the next command.  The other columns are
    shortened (``…``) to the terminal's width; when the kept columns do not fit beside
    the others even then, every row is printed as a block instead: the kept values on
    lines of their own, the other fields after them.  ``colour(column, value)`` names a
    cell's colour, used only on a terminal without NO_COLOR.

    Parameters
    ----------
    headers : list of str
        The column headers.
    rows : list of list of str
        The cells, one list per row, as many as ``headers``.
    keep : tuple of int, default=(0,)
        The columns never shortened; the first starts a row's block.
    colour : callable, optional
        ``colour(column, value)`` -> a colour name for :func:`coloured`, or ``None``.
    """
    import shutil

    out = sys.stdout
    width = shutil.get_terminal_size().columns
    natural = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(headers)]
    fitted = _fit(natural, keep, width - len(_GAP) * (len(headers) - 1))
    if fitted is None:
        for row in rows:
            for index in keep:
                line = row[index] if index == keep[0] else f"  {headers[index]}: {row[index]}"
                out.write(line + "\n")
            pairs = enumerate(zip(headers, row, strict=True))
            rest = [f"{h}: {coloured(v, colour(i, v) if colour else None, out)}"
                    for i, (h, v) in pairs if i not in keep and v]
            if rest:
                out.write("  " + "  ".join(rest) + "\n")
        return

    def render(cells: list[str], paint: bool) -> str:
        parts = []
        for index, (cell, size) in enumerate(zip(cells, fitted, strict=True)):
            text = _shorten(cell, size)
            padded = text.ljust(size)
            if paint and colour is not None:
                padded = coloured(text, colour(index, cell), out) + " " * (size - len(text))
            parts.append(padded)
        return _GAP.join(parts).rstrip()

    out.write(render(headers, False) + "\n")
    for row in rows:
        out.write(render(row, True) + "\n")


def print_pairs(pairs: list[tuple[str, str]]) -> None:
    """Print ``name  value`` lines, the names aligned; values are never cut.

    Parameters
    ----------
    pairs : list of (str, str)
        The names and values, in order.
    """
    width = max((len(name) for name, _ in pairs), default=0)
    for name, value in pairs:
        sys.stdout.write(f"{name.ljust(width)}{_GAP}{value}".rstrip() + "\n")


def print_json(records: object) -> None:
    """Print records as indented JSON (dates as ISO text), the whole of every record."""
    import json

    sys.stdout.write(json.dumps(records, default=str, indent=2, ensure_ascii=False) + "\n")
