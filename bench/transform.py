"""Benchmark: local Batch Transform (``handle.transformer(...).transform(...)``) throughput.

Run:  FEDSAGE_RUNTIMES_DIR=/work/main/.fedsage-ci/runtimes \\
      .venv/bin/python bench/transform.py [--rows 500000 --files 4 --repeat 3]

A LinearRegression on 6 numeric columns, trained by a normal SageMaker script on the
0.23-1 runtime, scores ``--rows`` CSV rows split over ``--files`` files in the local store.
Each configuration runs ``--repeat`` times in a private FEDSAGE_HOME; the table shows the
median wall time of ``transform(wait=True)`` (the model server's start included), rows per
second, and the requests sent.  ``SingleRecord`` runs on ``--single`` rows only (one request
per row).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os
    import joblib
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LinearRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)


def _rows(count: int, with_id: bool) -> bytes:
    import numpy as np

    rng = np.random.default_rng(1)
    values = rng.random((count, 6)).round(4)
    lines = []
    for index, row in enumerate(values):
        text = ",".join(f"{v:.4f}" for v in row)
        lines.append(f"id{index},{text}" if with_id else text)
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--single", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="fedsage-bench-transform-"))
    os.environ["FEDSAGE_HOME"] = str(home)
    os.chdir(home)
    import numpy as np
    import pandas as pd

    from fedsage import DwcSagemaker

    (home / "train.py").write_text(SCRIPT)
    rng = np.random.default_rng(0)
    x = rng.random((200, 6))
    frame = pd.DataFrame(np.column_stack([x @ np.arange(1, 7) + 1, x]))
    dwc = DwcSagemaker(prefix="bench")
    handle = dwc.train_sklearn_model(frame, train_script="train.py", wait=True, logs="None")
    store = dwc._backend.store

    def put(prefix: str, count: int, files: int, with_id: bool) -> str:
        per_file = count // files
        body = _rows(per_file, with_id)
        for index in range(files):
            path = home / "upload"
            path.write_bytes(body)
            store.put_file(f"bench/{prefix}/part-{index}.csv", path)
        return f"s3://{store.bucket}/bench/{prefix}/"

    plain = put("plain", args.rows, args.files, with_id=False)
    ids = put("ids", args.rows, args.files, with_id=True)
    single = put("single", args.single, 1, with_id=False)
    cases = [
        ("MultiRecord 6 MB, 1 in flight", plain, args.rows, {"max_concurrent_transforms": 1}, {}),
        ("MultiRecord 6 MB, 2 in flight", plain, args.rows, {"max_concurrent_transforms": 2}, {}),
        ("MultiRecord 1 MB, 2 in flight", plain, args.rows,
         {"max_concurrent_transforms": 2, "max_payload": 1}, {}),
        ("+ input_filter, join, output_filter", ids, args.rows, {"max_concurrent_transforms": 2},
         {"input_filter": "$[1:]", "join_source": "Input", "output_filter": "$[0,-1]"}),
        (f"SingleRecord ({args.single:,} rows), 2 in flight", single, args.single,
         {"max_concurrent_transforms": 2, "strategy": "SingleRecord"}, {}),
    ]  # fmt: skip
    print(f"{'configuration':44} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'requests':>9}")
    for label, data, rows, settings, extra in cases:
        times = []
        requests = 0
        for _ in range(args.repeat):
            transformer = handle.transformer(
                1, "local", assemble_with="Line", accept="text/csv",
                **({"strategy": "MultiRecord"} | settings),
            )  # fmt: skip
            start = time.perf_counter()
            transformer.transform(data, content_type="text/csv", split_type="Line", logs=False,
                                  **extra)  # fmt: skip
            times.append(time.perf_counter() - start)
            described = transformer.latest_transform_job.describe()
            requests = sum(f["Requests"] for f in described["Fedsage"]["Files"])
        seconds = statistics.median(times)
        print(f"{label:44} {rows:>9,} {seconds:>8.2f} {rows / seconds:>10,.0f} {requests:>9,}")


if __name__ == "__main__":
    main()
