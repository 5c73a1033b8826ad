"""What a local training job adds over running the script by hand.

Prints a table: median (and min/max) wall time of ``python script.py`` run bare vs the
same script through ``DwcSagemaker.train_sklearn_model(wait=True)``, for each runtime
given (default: ``host`` and ``0.23-1``).  Target: fedsage adds at most 0.3 s.

    .venv/bin/python bench/train_overhead.py [--runs 10] [--versions host 0.23-1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import os
if __name__ == "__main__":
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as out:
        out.write("fitted")
"""


def _bare(python: str, script: Path, runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, str(script)], env=env, check=True, cwd=script.parent)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--versions", nargs="+", default=["host", "0.23-1"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedsage-bench-") as tmp:
        root = Path(tmp)
        os.environ["FEDSAGE_HOME"] = str(root / "home")
        if "FEDSAGE_RUNTIMES_DIR" not in os.environ and Path(".fedsage-ci/runtimes").is_dir():
            os.environ["FEDSAGE_RUNTIMES_DIR"] = str(Path(".fedsage-ci/runtimes").resolve())
        os.chdir(root)
        import warnings

        import pandas as pd

        from fedsage import DwcSagemaker
        from fedsage.runtimes import resolve_runtime

        warnings.simplefilter("ignore")
        script = root / "train.py"
        script.write_text(SCRIPT)
        model_dir = root / "model"
        model_dir.mkdir()
        frame = pd.DataFrame({"y": [0, 1] * 50, "x": range(100)})
        dwc = DwcSagemaker(prefix="bench")
        rows = []
        for version in args.versions:
            runtime = resolve_runtime(version)
            env = {**os.environ, **runtime.env, "SM_MODEL_DIR": str(model_dir)}
            bare = _bare(str(runtime.python), script, args.runs, env)
            jobs = []
            for _ in range(args.runs):
                start = time.perf_counter()
                dwc.train_sklearn_model(
                    frame, train_script=str(script), framework_version=version,
                    wait=True, logs="None",
                )
                jobs.append(time.perf_counter() - start)
            rows.append((version, runtime.python_version, bare, jobs))

    print(f"\nmedian of {args.runs} runs, seconds (min-max)   machine: {os.cpu_count()} cores")
    header = (
        f"{'runtime':<10} {'python':<8} {'bare script':>20} "
        f"{'train_sklearn_model':>22} {'added':>8}"
    )
    print(header)
    print("-" * len(header))
    for version, python, bare, jobs in rows:
        added = statistics.median(jobs) - statistics.median(bare)
        print(
            f"{version:<10} {python:<8} "
            f"{statistics.median(bare):>7.3f} ({min(bare):.3f}-{max(bare):.3f}) "
            f"{statistics.median(jobs):>9.3f} ({min(jobs):.3f}-{max(jobs):.3f}) "
            f"{added:>8.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
