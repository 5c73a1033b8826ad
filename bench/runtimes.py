"""Benchmark framework runtimes: build times, size and warm job overhead.

Usage::

    .venv/bin/python bench/runtimes.py [VERSION ...]      # default: 0.23-1 1.2-1
    .venv/bin/python bench/runtimes.py --all

Per version, in a throw-away runtime folder:

- *first build*: empty runtime folder and an empty uv cache (everything downloaded);
- *rebuild*: the runtime removed, uv's cache kept warm (what a second machine user or a
  spec change costs);
- *size* of the runtime folder;
- *resolve*: ``resolve_runtime`` on the warm cache (median of 50, in-process);
- *start*: ``runtime/bin/python script.py`` with the image's environment minus a bare
  ``python script.py`` under the same base interpreter (median of 15 each), where
  ``script.py`` is an empty script;
- *overhead* = resolve + start: what fedsage adds before a job's own code runs, apart
  from the job runner's own work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedsage.runtimes import IMAGE_ENV, SUPPORTED_VERSIONS, resolve_runtime
from fedsage.runtimes.build import MANIFEST, read_manifest, remove_entry


def _du(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _median_run(cmd: list[str], env: dict[str, str], n: int = 15) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(version: str, work: Path) -> dict[str, str]:
    """Measure one version; return the table row."""
    os.environ["FEDSAGE_RUNTIMES_DIR"] = str(work / "runtimes")
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")
    started = time.perf_counter()
    runtime = resolve_runtime(version)
    first = time.perf_counter() - started
    assert runtime.root is not None
    remove_entry(runtime.root)
    started = time.perf_counter()
    runtime = resolve_runtime(version)
    rebuild = time.perf_counter() - started
    assert runtime.root is not None
    size = _du(runtime.root)

    resolves = []
    for _ in range(50):
        started = time.perf_counter()
        resolve_runtime(version)
        resolves.append(time.perf_counter() - started)
    resolve = statistics.median(resolves)

    script = work / "script.py"
    script.write_text("pass\n")
    manifest = read_manifest(runtime.root) or {}
    base = manifest.get("base_python", str(runtime.python))
    path_env = {"PATH": os.environ.get("PATH", "")}
    bare = _median_run([base, str(script)], path_env)
    in_runtime = _median_run([str(runtime.python), str(script)], {**path_env, **IMAGE_ENV})
    start = in_runtime - bare
    assert (runtime.root / MANIFEST).exists()
    return {
        "version": version,
        "python": runtime.python_version,
        "scikit-learn": runtime.packages.get("scikit-learn", "?"),
        "kind": "approximate" if runtime.approximate else "exact",
        "first build s": f"{first:.1f}",
        "rebuild (warm uv) s": f"{rebuild:.1f}",
        "size MB": f"{size / 1e6:.0f}",
        "resolve ms": f"{resolve * 1e3:.2f}",
        "bare start ms": f"{bare * 1e3:.1f}",
        "start overhead ms": f"{start * 1e3:.1f}",
        "overhead s": f"{resolve + max(start, 0.0):.3f}",
    }


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", default=["0.23-1", "1.2-1"])
    parser.add_argument("--all", action="store_true", help="every supported version")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    versions = list(SUPPORTED_VERSIONS) if args.all else args.versions
    rows = []
    for version in versions:
        work = Path(tempfile.mkdtemp(prefix=f"fedsage-bench-rt-{version}-"))
        try:
            rows.append(bench(version, work))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        sys.stderr.write(f"{version}: done\n")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row[key] for key in header) + " |")
    print(
        f"\n{os.cpu_count()} CPUs; uv cache cold for the first build; target: first build"
        " <= 30 s, overhead <= 0.3 s."
    )


if __name__ == "__main__":
    main()
