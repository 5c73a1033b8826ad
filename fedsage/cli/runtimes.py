"""``fedsage runtimes``: list, build, locate and remove framework runtimes.

A runtime is named as in the cache: a scikit-learn ``framework_version`` (``0.23-1``)
or ``<framework>-<version>`` for another framework's images (``xgboost-1.7-1``).
"""

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
    FRAMEWORKS,
    SKLEARN,
    ApproximateRuntimeWarning,
    check_framework,
    check_framework_version,
    resolve_runtime,
    supported_versions,
)
from ..runtimes.build import (
    built_runtimes,
    manifest_framework,
    read_manifest,
    remove_entry,
    runtimes_root,
)
from ..runtimes.catalog import load_spec, spec_label
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


def _split(value: str, framework: str) -> tuple[str, str]:
    """``'xgboost-1.7-1'`` -> ``('xgboost', '1.7-1')``; a bare version is ``framework``'s."""
    for name in FRAMEWORKS:
        if name != SKLEARN and value.startswith(f"{name}-"):
            return name, value[len(name) + 1 :]
    return framework, value


def _versions(values: list[str], framework: str) -> list[tuple[str, str]]:
    check_framework(framework, "--framework")
    wanted = []
    for value in values:
        name, version = _split(value, framework)
        wanted.append((name, check_framework_version(version, "VERSION", framework=name)))
    return wanted


def _every_version(framework: str | None) -> list[tuple[str, str]]:
    frameworks = FRAMEWORKS if framework is None else (check_framework(framework, "--framework"),)
    return [(name, version) for name in frameworks for version in supported_versions(name)]


def _built(framework: str, version: str) -> list[Path]:
    return [
        folder
        for folder, manifest in built_runtimes()
        if manifest["framework_version"] == version and manifest_framework(manifest) == framework
    ]


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
        entries: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
        for folder, manifest in built_runtimes():
            key = (manifest_framework(manifest), manifest["framework_version"])
            entries.setdefault(key, []).append((folder, manifest))
        table = Table("version", "framework", "Python", "library", "size", "built", "kind")
        for framework, version in _every_version(None):
            spec = load_spec(version, framework).exact
            label = spec_label(version, framework)
            if (framework, version) not in entries:
                library = spec.packages.get(framework, "-")
                table.add_row(label, framework, spec.python, library, "-", "no", "-")
            for folder, manifest in entries.get((framework, version), []):
                built = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest["built_at"]))
                table.add_row(
                    label,
                    framework,
                    manifest["python_version"],
                    manifest["packages"].get(framework, "-"),
                    f"{_size(folder) / 1e6:.0f} MB",
                    built,
                    "approximate" if manifest["approximate"] else "exact",
                )
        console.print(table)
    except FedsageError as exc:
        raise fail(exc) from None


@app.command("build")
def build(
    versions: list[str] = typer.Argument(
        None,
        metavar="VERSION...",
        help="Versions to build: 0.23-1 (scikit-learn), xgboost-1.7-1 (the XGBoost image).",
    ),
    all_versions: bool = typer.Option(
        False, "--all", help="Build every supported version (of --framework, if given)."
    ),
    framework: str = typer.Option(
        None, "--framework", help="scikit-learn or xgboost: the framework of bare VERSIONs."
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse approximate runtimes."),
) -> None:
    """Build (or reuse) the runtimes of the given versions."""
    try:
        if all_versions:
            wanted = _every_version(framework)
        else:
            wanted = _versions(versions or [], framework or SKLEARN)
        if not wanted:
            raise typer.BadParameter("name at least one VERSION, or use --all")
        for name, version in wanted:
            label = spec_label(version, name)
            with _progress_bar(label) as report, warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", ApproximateRuntimeWarning)
                runtime = resolve_runtime(
                    version, framework=name, strict=strict or None, progress=report
                )
            for warning in said:
                err_console.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False)
            kind = "approximate" if runtime.approximate else "exact"
            console.print(
                f"{label}: Python {runtime.python_version}, {name} "
                f"{runtime.packages.get(name, '?')} ({kind}) at {runtime.root}",
                highlight=False,
                soft_wrap=True,
            )
    except FedsageError as exc:
        raise fail(exc) from None


@app.command("path")
def path(version: str = typer.Argument(..., metavar="VERSION")) -> None:
    """Print the folder of a built runtime (exact first, else approximate)."""
    try:
        ((name, bare),) = _versions([version], SKLEARN)
        matches = _built(name, bare)
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
        ((name, bare),) = _versions([version], SKLEARN)
        matches = _built(name, bare)
        if not matches:
            raise FedsageError(f"no {version} runtime is built under {runtimes_root()}")
        for folder in matches:
            remove_entry(folder)
            console.print(f"removed {folder}", highlight=False, soft_wrap=True)
    except FedsageError as exc:
        raise fail(exc) from None
