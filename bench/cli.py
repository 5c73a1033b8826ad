"""Benchmark: how long the ``fedsage`` command line takes to start.

Run:  .venv/bin/python bench/cli.py [--runs 20] [--no-installed] [--compare REV]

Times whole processes, interpreter start and imports included, as a user runs them:
``python -c pass`` (the floor), ``fedsage --help``, ``fedsage endpoints list`` with a
fresh (empty) FEDSAGE_HOME for every run, and ``fedsage endpoints list`` with three
endpoint records present (their servers are not running, so they list as Failed).  Each
is run ``--runs`` times, the commands taking turns run by run so that load which changes
during the measurement hits all alike; the table shows the median and the minimum wall
time.

Two installs are measured: this checkout's editable one (``.venv``), and a regular one
(``uv pip install --compile-bytecode .`` into a temporary venv made from the same Python,
removed afterwards; ``--no-installed`` skips it).  ``--compare REV`` also installs the
commit REV of this repository that way (``git archive``), e.g. the typer command line
before it moved to argparse, measured in the same turns.  The load average is printed,
since other work on the machine moves these numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RECORDS = """
import time
from fedsage.serving.endpoints import EndpointRecord, endpoints
for i in range(3):
    endpoints.add(EndpointRecord(
        name=f"bench-endpoint-{i}", created=time.time() - 60 * i, status="InService",
        url=f"http://127.0.0.1:{8080 + i}", host="127.0.0.1", port=8080 + i, workers=2,
        runtime={"FrameworkVersion": "0.23-1"},
    ))
"""


@contextmanager
def installed_venv(revision: str | None = None) -> Iterator[Path]:
    """A temporary venv with fedsage installed (not editable) from this checkout or REV."""
    folder = Path(tempfile.mkdtemp(prefix="fedsage-bench-cli-"))
    source = ROOT
    build = ROOT / "build"  # setuptools builds a checkout in place: leave none behind
    had_build = build.exists()
    try:
        if revision is not None:
            source = folder / "source"
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        uv = [sys.executable, "-m", "uv"]
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([*uv, "venv", "-q", "--python", base, str(folder / "venv")], check=True)
        subprocess.run(
            [*uv, "pip", "install", "-q", "--python", str(folder / "venv" / "bin" / "python"),
             "--compile-bytecode", str(source)],
            check=True,
        )
        yield folder / "venv"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if not had_build:
            shutil.rmtree(build, ignore_errors=True)


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def measure(venvs: dict[str, Path], runs: int) -> dict[str, dict[str, list[float]]]:
    """Wall times of each command in each venv, ``runs`` each, all taking turns."""
    times: dict[str, dict[str, list[float]]] = {name: {} for name in venvs}
    with tempfile.TemporaryDirectory(prefix="fedsage-bench-home-") as tmp:
        homes = Path(tmp)
        for index, venv in enumerate(venvs.values()):
            env = {"PATH": "/usr/bin:/bin", "FEDSAGE_HOME": str(homes / f"three-{index}")}
            subprocess.run([str(venv / "bin" / "python"), "-c", _RECORDS], env=env, check=True)
        for run in range(runs):
            for index, (name, venv) in enumerate(venvs.items()):
                fresh = homes / f"fresh-{index}-{run}"
                fresh.mkdir()
                listed = homes / f"three-{index}"
                python, fedsage = str(venv / "bin" / "python"), str(venv / "bin" / "fedsage")
                cases = {
                    "python -c pass": ([python, "-c", "pass"], fresh),
                    "fedsage --help": ([fedsage, "--help"], fresh),
                    "fedsage endpoints list (fresh home)": ([fedsage, "endpoints", "list"],
                                                            fresh),
                    "fedsage endpoints list (3 records)": ([fedsage, "endpoints", "list"],
                                                           listed),
                }
                for label, (argv, home) in cases.items():
                    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
                           "FEDSAGE_HOME": str(home)}
                    times[name].setdefault(label, []).append(_time(argv, env))
    return times


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-installed", action="store_true",
                        help="Measure only the editable install in .venv.")
    parser.add_argument("--compare", metavar="REV",
                        help="Also measure commit REV, installed (not editable).")
    options = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  "
          f"(cores: {os.cpu_count()}; runs: {options.runs}; Python {sys.version.split()[0]})")
    with contextlib.ExitStack() as stack:
        venvs = {"editable (.venv)": ROOT / ".venv"}
        if not options.no_installed:
            venvs["installed (uv pip install .)"] = stack.enter_context(installed_venv())
        if options.compare:
            venvs[f"installed {options.compare}"] = stack.enter_context(
                installed_venv(options.compare))
        results = measure(venvs, options.runs)
    print(f"{'install':<30} {'command':<38} {'median s':>9} {'min s':>7}")
    for install, times in results.items():
        for label, values in times.items():
            print(f"{install:<30} {label:<38} {statistics.median(values):>9.3f} "
                  f"{min(values):>7.3f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
