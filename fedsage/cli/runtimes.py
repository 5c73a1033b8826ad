"""``fedsage runtimes``: list, build, locate and remove framework runtimes.

A runtime is named as in the cache: a scikit-learn ``framework_version`` (``0.23-1``)
or ``<framework>-<version>`` for another framework's images (``xgboost-1.7-1``).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
from ._common import command, echo, fail, group, print_records, usage_error, warn

HELP = "Per-framework_version runtimes (the image's Python and libraries, without Docker)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill the ``fedsage runtimes`` group's parser."""
    commands = group(parser, HELP)
    command(commands, "list", list_runtimes)
    built = command(commands, "build", build)
    built.add_argument(
        "versions", nargs="*", metavar="VERSION",
        help="Versions to build: 0.23-1 (scikit-learn), xgboost-1.7-1 (the XGBoost image).",
    )
    built.add_argument("--all", dest="all_versions", action="store_true",
                       help="Build every supported version (of --framework, if given).")
    built.add_argument("--framework", default=None,
                       help="scikit-learn or xgboost: the framework of bare VERSIONs.")
    built.add_argument("--strict", action="store_true", help="Refuse approximate runtimes.")
    command(commands, "path", path).add_argument("version", metavar="VERSION")
    command(commands, "remove", remove).add_argument("version", metavar="VERSION")


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
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=1.0)

        def report(message: str, fraction: float | None) -> None:
            bar.update(
                task,
                description=f"{label}: {message}",
                completed=fraction if fraction is not None else None,
            )

        yield report


def list_runtimes(args: argparse.Namespace) -> None:
    """Show every supported version and whether its runtime is built."""
    try:
        entries: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
        for folder, manifest in built_runtimes():
            key = (manifest_framework(manifest), manifest["framework_version"])
            entries.setdefault(key, []).append((folder, manifest))
        rows: list[list[str]] = []
        for framework, version in _every_version(None):
            spec = load_spec(version, framework).exact
            label = spec_label(version, framework)
            if (framework, version) not in entries:
                library = spec.packages.get(framework, "-")
                rows.append([label, framework, spec.python, library, "-", "no", "-"])
            for folder, manifest in entries.get((framework, version), []):
                built = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest["built_at"]))
                rows.append([
                    label,
                    framework,
                    manifest["python_version"],
                    manifest["packages"].get(framework, "-"),
                    f"{_size(folder) / 1e6:.0f} MB",
                    built,
                    "approximate" if manifest["approximate"] else "exact",
                ])
        print_records(["version", "framework", "Python", "library", "size", "built", "kind"], rows)
    except FedsageError as exc:
        raise fail(exc) from None


def build(args: argparse.Namespace) -> None:
    """Build (or reuse) the runtimes of the given versions."""
    try:
        if args.all_versions:
            wanted = _every_version(args.framework)
        else:
            wanted = _versions(args.versions, args.framework or SKLEARN)
        if not wanted:
            usage_error(args, "name at least one VERSION, or use --all")
        for name, version in wanted:
            label = spec_label(version, name)
            with _progress_bar(label) as report, warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", ApproximateRuntimeWarning)
                runtime = resolve_runtime(
                    version, framework=name, strict=args.strict or None, progress=report
                )
            for warning in said:
                warn(warning.message)
            kind = "approximate" if runtime.approximate else "exact"
            echo(
                f"{label}: Python {runtime.python_version}, {name} "
                f"{runtime.packages.get(name, '?')} ({kind}) at {runtime.root}"
            )
    except FedsageError as exc:
        raise fail(exc) from None


def path(args: argparse.Namespace) -> None:
    """Print the folder of a built runtime (exact first, else approximate)."""
    try:
        version: str = args.version
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
        echo(str(folder))
    except FedsageError as exc:
        raise fail(exc) from None


def remove(args: argparse.Namespace) -> None:
    """Delete every built runtime of a version (exact and approximate)."""
    try:
        version: str = args.version
        ((name, bare),) = _versions([version], SKLEARN)
        matches = _built(name, bare)
        if not matches:
            raise FedsageError(f"no {version} runtime is built under {runtimes_root()}")
        for folder in matches:
            remove_entry(folder)
            echo(f"removed {folder}")
    except FedsageError as exc:
        raise fail(exc) from None
