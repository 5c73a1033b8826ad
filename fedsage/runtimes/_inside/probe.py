"""Run *inside* a runtime: report its Python, installed distributions and imports.

Standard library only, Python 3.7 syntax.  Usage::

    <runtime>/bin/python -I probe.py MODULE [MODULE ...]

prints one JSON object: ``python`` (X.Y.Z), ``prefix``, ``distributions`` (normalized
name -> version, from the ``*.dist-info`` folders on ``sys.path``) and ``imports``
(module -> ``null`` or the error it raised).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import warnings


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> dict[str, str]:
    """Map every installed distribution to its version."""
    found: dict[str, str] = {}
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        for child in sorted(os.listdir(entry)):
            if not child.endswith(".dist-info"):
                continue
            meta = os.path.join(entry, child, "METADATA")
            name = version = None
            try:
                with open(meta, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if line.startswith("Name:"):
                            name = line.split(":", 1)[1].strip()
                        elif line.startswith("Version:"):
                            version = line.split(":", 1)[1].strip()
                        elif not line.strip():
                            break
            except OSError:
                continue
            if name and version:
                found.setdefault(_normalize(name), version)
    return found


def main(modules: list[str]) -> None:
    """Print the report for ``modules``."""
    imports: dict[str, str | None] = {}
    for module in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(module)
            imports[module] = None
        except Exception as exc:  # reported, not handled
            imports[module] = f"{type(exc).__name__}: {exc}"
    report = {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "prefix": sys.prefix,
        "distributions": distributions(),
        "imports": imports,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
