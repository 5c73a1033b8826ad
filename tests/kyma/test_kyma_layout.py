"""The Kyma package layout: two targets over a small core, and no import cycle.

* the core (``fedsage/kyma/*.py``) imports neither target at module level;
* ``fedsage.kyma.local`` never imports ``fedsage.kyma.cluster`` and the other way round.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fedsage.kyma

ROOT = Path(fedsage.kyma.__file__).parent
CLUSTER, LOCAL = "fedsage.kyma.cluster", "fedsage.kyma.local"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, module_level: bool) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), optionally only at the top."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level else list(ast.walk(tree))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _touches(imports: set[str], target: str) -> list[str]:
    return sorted(name for name in imports if name == target or name.startswith(target + "."))


@pytest.mark.parametrize("path", sorted(ROOT.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_target_at_module_level(path):
    imports = _imports(path, module_level=True)
    assert _touches(imports, CLUSTER) == [] and _touches(imports, LOCAL) == []


@pytest.mark.parametrize(
    ("folder", "other"),
    [("local", CLUSTER), ("cluster", LOCAL)],
)
def test_targets_never_import_each_other(folder, other):
    offending = {
        path.name: _touches(_imports(path, module_level=False), other)
        for path in sorted((ROOT / folder).glob("*.py"))
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_importing_one_target_loads_nothing_of_the_other():
    script = (
        "import sys\n"
        "import fedsage.kyma.records, fedsage.kyma.names, fedsage.kyma.invoke\n"
        "core = sorted(m for m in sys.modules if m.startswith(('fedsage.kyma.cluster', "
        "'fedsage.kyma.local')))\n"
        "import fedsage.kyma.local, fedsage.kyma.local.gateway\n"
        "local = sorted(m for m in sys.modules if m.startswith('fedsage.kyma.cluster'))\n"
        "print(core, local)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"
    script = "import sys, fedsage.kyma.cluster\nprint([m for m in sys.modules if 'kyma.local' in m])"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
