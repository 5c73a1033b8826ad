"""pyproject.toml admits no release with a published advisory that fedsage knows of."""

from __future__ import annotations

from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# package -> first release without the advisory (the advisory, for the reader)
FLOORS = {
    "pyarrow": ("14.0.1", "CVE-2023-47248: arbitrary code execution reading IPC/Parquet"),
    "sagemaker": ("2.218.0", "CVE-2024-34072 / CVE-2024-34073: deserialization, command injection"),
    "filelock": ("3.20.3", "TOCTOU symlink races on the lock file"),
    "uv": ("0.9.5", "archive parsing differentials"),
    "scikit-learn": ("1.5.0", "CVE-2024-5206: TfidfVectorizer keeps tokens in stop_words_"),
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = {}
    for line in [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]:
        requirement = Requirement(line)
        if requirement.name in FLOORS:
            found[requirement.name] = requirement
    return found


def test_every_advised_package_is_required_with_a_safe_floor() -> None:
    found = _requirements()
    assert sorted(found) == sorted(FLOORS)
    for name, (floor, advisory) in FLOORS.items():
        lower = [Version(s.version) for s in found[name].specifier if s.operator in (">=", ">")]
        assert lower, f"{name} has no lower bound ({advisory})"
        assert max(lower) >= Version(floor), f"{name} admits releases before {floor}: {advisory}"
