"""Maintainer tool: resolve ``inputs.json`` into one exact lock per framework version.

Run ``python -m fedsage.runtimes.specs.lock [VERSION ...]`` after changing ``inputs.json``.
It resolves each version's top-level pins with ``uv pip compile`` against the real
interpreter of that Python minor (and again for the fallback line), and writes
``<version>.json``: the committed data that runtime builds install with ``--no-deps``.
Nothing here runs when fedsage is used; only the JSON files are read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import uv

from ..catalog import BINARY_ONLY
from ..discovery import find_interpreter

HERE = Path(__file__).parent
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")


def _compile(
    python: Path, requirements: list[str], exclude: tuple[str, ...] = ()
) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requirements.in"
        source.write_text("\n".join(requirements) + "\n")
        out = subprocess.run(
            [
                uv.find_uv_bin(),
                "pip",
                "compile",
                "--quiet",
                "--no-header",
                "--no-annotate",
                "--python",
                str(python),
                str(source),
                *(arg for dist in BINARY_ONLY for arg in ("--only-binary", dist)),
                *(arg for dist in exclude for arg in ("--no-emit-package", dist)),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    if out.returncode:
        raise SystemExit(f"uv pip compile failed for {requirements}:\n{out.stderr}")
    lock = {}
    for line in out.stdout.splitlines():
        match = _PIN.match(line.strip())
        if match:
            lock[match.group(1).lower().replace("_", "-")] = match.group(2)
    return dict(sorted(lock.items()))


def _merge(base: list[str], overrides: list[str]) -> list[str]:
    def name(req: str) -> str:
        return re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower().replace("_", "-")

    replaced = {name(req) for req in overrides}
    return [req for req in base if name(req) not in replaced] + overrides


def lock_version(version: str, inputs: dict) -> dict:
    """Resolve one version's exact and fallback locks and return the spec document.

    ``version`` is a key of ``inputs.json``: a scikit-learn ``framework_version``, or
    ``<framework>-<version>`` for an entry that names its ``framework``.
    """
    entry = inputs[version]
    exact_python = find_interpreter(entry["python"], allow_uv=True)
    if exact_python is None:
        raise SystemExit(f"no Python {entry['python']} here to resolve {version} against")
    exclude = tuple(entry.get("exclude", ()))
    doc: dict = {}
    if "framework" in entry:
        doc["framework"] = entry["framework"]
    doc.update(
        {
            "framework_version": entry.get("framework_version", version),
            "python": entry["python"],
            "image_python": entry["image_python"],
            "requirements": entry["requirements"],
            "packages": _compile(exact_python, entry["requirements"], exclude),
        }
    )
    if exclude:
        doc["excluded"] = list(exclude)
    fallback = entry.get("fallback")
    if fallback:
        fb_python = find_interpreter(fallback["python"], allow_uv=True)
        if fb_python is None:
            raise SystemExit(f"no Python {fallback['python']} for {version}'s fallback")
        requirements = _merge(entry["requirements"], fallback["requirements"])
        doc["fallback"] = {
            "python": fallback["python"],
            "requirements": requirements,
            "packages": _compile(fb_python, requirements, exclude),
        }
    return doc


def main(argv: list[str]) -> None:
    """Write ``<version>.json`` for the versions named (default: all)."""
    inputs = {
        k: v
        for k, v in json.loads((HERE / "inputs.json").read_text()).items()
        if not k.startswith("_")
    }
    for version in argv or list(inputs):
        doc = lock_version(version, inputs)
        (HERE / f"{version}.json").write_text(json.dumps(doc, indent=1) + "\n")
        sys.stderr.write(f"{version}: {len(doc['packages'])} packages\n")


if __name__ == "__main__":
    main(sys.argv[1:])
