"""``fedsage runtimes``: list, build, locate and remove framework runtimes."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import FedsageError
from ..runtimes import (
    SUPPORTED_VERSIONS,
    ApproximateRuntimeWarning,
    check_framework_version,
    resolve_runtime,
)
from ..runtimes.build import built_runtimes, read_manifest, remove_entry, runtimes_root
from ..runtimes.catalog import load_spec
from ._common import console, err_console, fail

app = typer.Typer(
    help="Per-framework_version runtimes (the image's Python and libraries, without Docker).",
    no_args_is_help=True,
)
def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _versions(values: list[str]) -> list[str]:
    return [check_framework_version(value, "VERSION") for value in values]


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[str, float | None], None]]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(label, total=1.0)

        def report(message: str, fraction: float | None) -> None:
            bar.update(
                task,
                description=f"{label}: {message}",
                completed=fraction if fraction is not None else None,
            )

        yield report


@app.command("list")
def list_runtimes() -> None:
    """Show every supported version and whether its runtime is built."""
    try:
        entries: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
        for folder, manifest in built_runtimes():
            entries.setdefault(manifest["framework_version"], []).append((folder, manifest))
        table = Table("version", "Python", "scikit-learn", "size", "built", "kind")
        for version in SUPPORTED_VERSIONS:
            spec = load_spec(version).exact
            if version not in entries:
                table.add_row(
                    version, spec.python, spec.packages.get("scikit-learn", "-"), "-", "no", "-"
                )
            for folder, manifest in entries.get(version, []):
                built = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest["built_at"]))
                table.add_row(
                    version,
                    manifest["python_version"],
                    manifest["packages"].get("scikit-learn", "-"),
                    f"{_size(folder) / 1e6:.0f} MB",
                    built,
                    "approximate" if manifest["approximate"] else "exact",
                )
        console.print(table)
    except FedsageError as exc:
        raise fail(exc) from None


@app.command("build")
def build(
    versions: list[str] = typer.Argument(None, metavar="VERSION...", help="Versions to build."),
    all_versions: bool = typer.Option(False, "--all", help="Build every supported version."),
    strict: bool = typer.Option(False, "--strict", help="Refuse approximate runtimes."),
) -> None:
    """Build (or reuse) the runtimes of the given versions."""
    try:
        wanted = list(SUPPORTED_VERSIONS) if all_versions else _versions(versions or [])
        if not wanted:
            raise typer.BadParameter("name at least one VERSION, or use --all")
        for version in wanted:
            with _progress_bar(version) as report, warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", ApproximateRuntimeWarning)
                runtime = resolve_runtime(version, strict=strict or None, progress=report)
            for warning in said:
                err_console.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False)
            kind = "approximate" if runtime.approximate else "exact"
            console.print(
                f"{version}: Python {runtime.python_version}, scikit-learn "
                f"{runtime.packages.get('scikit-learn', '?')} ({kind}) at {runtime.root}",
                highlight=False,
                soft_wrap=True,
            )
    except FedsageError as exc:
        raise fail(exc) from None


@app.command("path")
def path(version: str = typer.Argument(..., metavar="VERSION")) -> None:
    """Print the folder of a built runtime (exact first, else approximate)."""
    try:
        check_framework_version(version, "VERSION")
        matches = [f for f, m in built_runtimes() if m["framework_version"] == version]
        # exact runtimes first
        matches.sort(key=lambda f: bool((read_manifest(f) or {}).get("approximate")))
        if not matches:
            raise FedsageError(
                f"the {version} runtime is not built; build it with: "
                f"fedsage runtimes build {version}"
            )
        folder = matches[0]
        console.print(str(folder), highlight=False, soft_wrap=True)
    except FedsageError as exc:
        raise fail(exc) from None


@app.command("remove")
def remove(version: str = typer.Argument(..., metavar="VERSION")) -> None:
    """Delete every built runtime of a version (exact and approximate)."""
    try:
        check_framework_version(version, "VERSION")
        matches = [f for f, m in built_runtimes() if m["framework_version"] == version]
        if not matches:
            raise FedsageError(f"no {version} runtime is built under {runtimes_root()}")
        for folder in matches:
            remove_entry(folder)
            console.print(f"removed {folder}", highlight=False, soft_wrap=True)
    except FedsageError as exc:
        raise fail(exc) from None
