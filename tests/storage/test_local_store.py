"""The local object store hands out copies: nothing done to a downloaded file reaches
the stored object."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.storage import LocalStore


def test_a_download_is_a_copy(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s3", "bucket")
    source = tmp_path / "in.csv"
    source.write_text("1,2\n")
    store.put_file("data/in.csv", source)
    copy = store.download("data/in.csv", tmp_path / "work" / "in.csv")
    assert copy.stat().st_ino != store.path("data/in.csv").stat().st_ino
    copy.write_text("rewritten\n")
    assert store.path("data/in.csv").read_text() == "1,2\n"
    # Downloading again replaces the changed copy.
    assert store.download("data/in.csv", copy).read_text() == "1,2\n"


REWRITER = textwrap.dedent(
    """
    import os
    import pandas as pd
    if __name__ == "__main__":
        path = os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")
        frame = pd.read_csv(path, header=None)
        frame.assign(extra=99).to_csv(path, header=False, index=False)  # rewrites its input
        open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.txt"), "w").write(
            open(path).read()
        )
    """
)


def test_a_script_that_rewrites_its_input_leaves_the_stored_channel_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(REWRITER)
    dwc = DwcSagemaker(prefix="copies")
    handle = dwc.train_sklearn_model(
        pd.DataFrame({"a": [1, 2]}),
        train_script=str(script),
        framework_version="host",
        wait=True,
        logs="None",
    )
    channel = handle.describe()["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    key = channel.split("/", 3)[3]
    stored = dwc._backend.store.path(key.rstrip("/") + "/train.csv")  # type: ignore[attr-defined]
    assert stored.read_text() == "1\n2\n"
