"""The layers of docs/architecture.md, enforced: every import goes down, never up.

Each module of the library belongs to one unit (a package, or a top-level module; Kyma's
core and its two targets are units of their own), and every unit has a layer.  A unit
may import only units of lower layers, so there are no cycles, nothing below
``backends`` imports it, and nothing in the library imports the command line.  All
imports count: module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fedsage"

# The code that runs inside a framework runtime imports nothing of fedsage.
IN_RUNTIME = ("serving/_worker", "runtimes/_inside", "builtin/_inside", "demo_assets")

# unit -> layer; a unit imports only units with a smaller number.
LAYERS = {
    "errors": 0,
    "_validation": 1, "_home": 1, "_archive": 1, "_log": 1, "_html": 1, "_progress": 1,
    "_aws_errors": 1, "_pid": 1,
    "_process": 2,
    "storage": 3, "runtimes": 3, "data": 3,
    "channels": 4, "training": 4, "serving": 4,
    "kyma": 5, "builtin": 5,
    "kyma.local": 6, "kyma.cluster": 6, "scoring": 6,
    "kyma.manage": 7,
    "backends": 8,
    "predictor": 9,
    "estimator": 10,
    "dwc_sagemaker": 11,
    "demo": 12, "__init__": 12,
    "cli": 13,
    "__main__": 14,
}  # fmt: skip


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] == "kyma" and len(parts) > 1 and parts[1] in ("local", "cluster", "manage"):
        return f"kyma.{parts[1]}"
    return parts[0]


def _imports(path: Path, package_root: Path = PACKAGE) -> set[str]:
    module = _module_name(path, package_root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                if node.module:
                    found.add(f"{base}.{node.module}")
                else:
                    found.update(f"{base}.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("fedsage.")}


def _library(package: Path = PACKAGE) -> list[Path]:
    return [
        path
        for path in sorted(package.rglob("*.py"))
        if not any(part in path.relative_to(package).as_posix() for part in IN_RUNTIME)
    ]


def _edges(package: Path = PACKAGE) -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, where)}."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in _library(package):
        source = _unit(_module_name(path, package))
        for target in _imports(path, package):
            unit = _unit(target)
            if unit != source:
                edges[source].add((unit, str(path.relative_to(package.parent))))
    return edges


def _upward(package: Path = PACKAGE) -> list[str]:
    return [
        f"{where}: {source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
        for source, targets in _edges(package).items()
        for target, where in sorted(targets)
        if LAYERS[target] >= LAYERS[source]
    ]


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(path)) for path in _library()}
    assert units - set(LAYERS) == set(), "add new packages to LAYERS and docs/architecture.md"


def test_imports_only_go_down() -> None:
    upward = _upward()
    assert upward == [], "\n".join(upward)


@pytest.mark.parametrize(
    ("unit", "may_be_imported_by"),
    [
        ("backends", {"estimator", "dwc_sagemaker", "demo", "cli"}),
        ("cli", {"__main__"}),
    ],
)
def test_the_named_rules(unit: str, may_be_imported_by: set[str]) -> None:
    importers = {source for source, targets in _edges().items() if unit in {t for t, _ in targets}}
    assert importers <= may_be_imported_by, f"{unit} is imported by {importers - may_be_imported_by}"


def test_the_kyma_targets_know_nothing_of_each_other() -> None:
    edges = _edges()
    assert "kyma.cluster" not in {t for t, _ in edges["kyma.local"]}
    assert "kyma.local" not in {t for t, _ in edges["kyma.cluster"]}


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rules can fail: in a copy of the package, storage importing backends is reported."""
    copy = tmp_path / "fedsage"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _upward(copy) == []
    (copy / "storage" / "_probe.py").write_text("from ..backends import get\n", encoding="utf-8")
    (found,) = _upward(copy)
    assert "storage (layer 3) imports backends (layer 8)" in found
