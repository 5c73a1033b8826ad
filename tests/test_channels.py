"""Training inputs as fedml-aws and SageMaker take them: paths, any file, BytesIO, any MIME type."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.channels import check_channel_name, check_content_type, plan_channel, upload_channel
from fedsage.errors import ConfigurationError
from fedsage.storage.local import LocalStore

ODD_FILES = ["train.npz", "train.parquet", "train.libsvm", "model.pkl", "README", "x.csv.bz2"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store", "bucket")


def _upload(store: LocalStore, data: object, content_type: str | None = None,
            name: str = "train") -> dict[str, bytes]:
    plan = plan_channel(name, data, content_type, param="train_data", store=store)
    prefix = upload_channel(plan, store, "job/data")
    assert prefix == f"s3://bucket/job/data/{name}/"
    return {key[len(f"job/data/{name}/"):]: store.path(key).read_bytes()
            for key in store.list(f"job/data/{name}/")}


# -- channel names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train", "test", "a.b-c_1", "X" * 64, "...", "v2.data"])
def test_valid_channel_names(name: str) -> None:
    assert check_channel_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "train\n", "train ", "tr ain", "a/b", "ü",
                                  "X" * 65, "..\n", 7, None])
def test_invalid_channel_names_are_refused(name: object) -> None:
    with pytest.raises(ConfigurationError, match="channel name"):
        check_channel_name(name)  # type: ignore[arg-type]


# -- content types -------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [
    "csv", "text/csv", "text/csv; label_size=0", "application/x-recordio-protobuf",
    "application/x-image", "text/libsvm", "application/x-parquet", "application/jsonlines",
    "Application/JSON", "x" * 256, None,
])
def test_content_types_are_taken_as_given(content_type: str | None) -> None:
    assert check_content_type(content_type) == content_type


@pytest.mark.parametrize(("content_type", "match"), [
    ("", "empty"), ("   ", "empty"), ("text/csv\n", "control character"),
    ("text/csv\r\nX-Evil: 1", "control character"), ("a\x00b", "control character"),
    ("text/\tcsv", "control character"), ("x" * 257, "at most 256"), (5, "must be a str"),
])
def test_bad_content_types_are_refused(content_type: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=f"content_type.*{match}|{match}"):
        check_content_type(content_type)  # type: ignore[arg-type]


def test_content_type_is_recorded_on_the_plan(store: LocalStore) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    plan = plan_channel("train", frame, "csv", param="train_data", store=store)
    assert plan.content_type == "csv"
    # A parquet MIME type, in any case and with parameters, writes a Parquet channel.
    files = _upload(store, frame, "Application/X-Parquet; charset=binary")
    assert list(files) == ["train.parquet"] and files["train.parquet"][:4] == b"PAR1"
    assert _upload(store, frame, "csv", name="test") == {"test.csv": b"1\n2\n"}


# -- files and folders ---------------------------------------------------------------


@pytest.mark.parametrize("file_name", ODD_FILES)
def test_any_file_as_a_plain_relative_path(workdir: Path, store: LocalStore,
                                           file_name: str) -> None:
    (workdir / file_name).write_bytes(b"\x00payload\xff")
    assert _upload(store, file_name) == {file_name: b"\x00payload\xff"}


def test_absolute_paths_path_objects_and_file_uris(workdir: Path, store: LocalStore) -> None:
    data = workdir / "sub" / "train.npz"
    data.parent.mkdir()
    np.savez(data, x=np.arange(3))
    payload = data.read_bytes()
    for given in (str(data), data, f"file://{data}", "sub/train.npz", "file://sub/train.npz",
                  "./sub/../sub/train.npz"):
        assert _upload(store, given) == {"train.npz": payload}, given


def test_folders_of_any_files(workdir: Path, store: LocalStore) -> None:
    folder = workdir / "parts"
    (folder / "deep").mkdir(parents=True)
    for name in ODD_FILES:
        (folder / name).write_bytes(name.encode())
    (folder / "deep" / "more.pkl").write_bytes(b"pickle")
    files = _upload(store, "parts")
    assert files == {**{n: n.encode() for n in ODD_FILES}, "deep/more.pkl": b"pickle"}


@pytest.mark.parametrize(("data", "match"), [
    ("missing.csv", "no such file or folder"),
    ("", "empty string"),
    ("https://example.com/train.csv", "https:// URI"),
    ("hdfs://cluster/train", "hdfs:// URI"),
    ("empty", "empty folder"),
    (b"raw bytes", "must be a pandas DataFrame"),
    (io.StringIO("a,b"), "must be a pandas DataFrame"),
])
def test_bad_inputs_name_the_parameter(workdir: Path, store: LocalStore, data: object,
                                       match: str) -> None:
    (workdir / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=f"train_data.*{match}|{match}.*train_data"):
        plan_channel("train", data, None, param="train_data", store=store)
    assert store.list("") == []


# -- BytesIO: fedml-aws's RecordIO-protobuf channels ----------------------------------


def test_bytesio_is_uploaded_as_a_protobuf_file(store: LocalStore) -> None:
    buffer = io.BytesIO()
    buffer.write(b"header-to-skip")
    start = buffer.tell()
    buffer.write(b"\x0a\x02recordio\x00")
    buffer.seek(start)
    plan = plan_channel("train", buffer, None, param="train_data", store=store)
    buffer.seek(0)  # moved after planning: what was planned is uploaded
    assert _upload(store, buffer) == {"train.protobuf": b"header-to-skip\x0a\x02recordio\x00"}
    assert upload_channel(plan, store, "other") == "s3://bucket/other/train/"
    assert store.path("other/train/train.protobuf").read_bytes() == b"\x0a\x02recordio\x00"


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 5000  # several of DuckDB's 2,048-row vectors, written by several threads
    numeric = pd.DataFrame({
        "label": rng.normal(size=n),
        "small": rng.exponential(size=n) * 1e-7,
        "big": rng.normal(size=n) * 1e17,
        "whole": np.round(rng.normal(size=n) * 100),
        "i64": rng.integers(-2**62, 2**62, size=n),
        "u64": rng.integers(0, 2**63, size=n, dtype=np.uint64),
        "i8": rng.integers(-100, 100, size=n).astype(np.int8),
        "nullable": pd.array(rng.integers(0, 5, size=n), dtype="Int64"),
        "nullable_f": pd.array(rng.normal(size=n), dtype="Float64"),
    })
    for row, value in enumerate([np.nan, -np.inf, np.inf, -0.0, 5e-324, 1e16, 1e15, 123456.0]):
        numeric.loc[row, "label"] = value
    numeric.loc[1, "nullable"] = pd.NA
    numeric.loc[2, "nullable_f"] = pd.NA
    numeric.index = numeric.index * 3 + 11  # never written
    mixed = numeric.iloc[:50].assign(
        flag=[True, False] * 25,
        text=["a", "b,c", 'q"x', None, "é"] * 10,
        when=pd.Timestamp("2020-01-02 03:04:05"),
        f32=rng.normal(size=50).astype(np.float32),
        cat=pd.Categorical(["x", "y"] * 25),
    )
    duplicated = numeric.iloc[:20, :3].set_axis(["a", "a", "b"], axis=1)
    return {"numeric": numeric, "mixed": mixed, "duplicated columns": duplicated}


@pytest.mark.parametrize("kind", ["numeric", "mixed", "duplicated columns"])
def test_dataframe_channel_is_byte_for_byte_pandas_to_csv(store: LocalStore, kind: str) -> None:
    """Numeric frames are written by DuckDB's CSV writer, others by pandas: same bytes."""
    frame = _frames()[kind]
    expected = frame.to_csv(header=False, index=False).encode()
    assert _upload(store, frame) == {"train.csv": expected}
    assert frame.equals(_frames()[kind])  # the caller's frame is left alone


def test_bytesio_with_nothing_left_is_refused(store: LocalStore) -> None:
    buffer = io.BytesIO(b"written but not rewound")
    buffer.seek(0, io.SEEK_END)
    with pytest.raises(ConfigurationError, match=r"train_data.*seek\(0\)"):
        plan_channel("train", buffer, None, param="train_data", store=store)
    with pytest.raises(ConfigurationError, match="train_data"):
        plan_channel("train", io.BytesIO(), None, param="train_data", store=store)


# -- end to end: what a training script sees ------------------------------------------

LIST_CHANNELS = """
import json, os
if __name__ == "__main__":
    seen = {}
    for name in json.loads(os.environ["SM_CHANNELS"]):
        folder = os.environ["SM_CHANNEL_" + name.upper()]
        seen[name] = sorted(os.path.relpath(os.path.join(d, f), folder)
                            for d, _, files in os.walk(folder) for f in files)
    report = {"files": seen, "config": json.loads(os.environ["SM_INPUT_DATA_CONFIG"]),
              "protobuf": open(os.path.join(os.environ["SM_CHANNEL_TEST"],
                                            "test.protobuf"), "rb").read().hex()}
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as out:
        json.dump(report, out)
"""


def test_training_job_sees_paths_bytesio_and_odd_files_as_given(workdir: Path) -> None:
    np.savez(workdir / "train.npz", x=np.arange(10))
    extra = workdir / "extra"
    extra.mkdir()
    pd.DataFrame({"a": [1.0]}).to_parquet(extra / "part-0.parquet")
    (extra / "data.libsvm").write_text("1 1:0.5\n")
    (extra / "enc.pkl").write_bytes(b"\x80\x04N.")
    (workdir / "train.py").write_text(LIST_CHANNELS)
    handle = DwcSagemaker(prefix="tests").train_sklearn_model(
        "train.npz", io.BytesIO(b"\x0a\x03abc"), content_type="csv",
        train_script="train.py", framework_version="host", wait=True, logs="None",
        channels={"extra": extra},
    )
    key = handle.model_data[len("s3://"):].split("/", 1)[1]
    archive = handle._backend.store.path(key)  # type: ignore[attr-defined]
    with tarfile.open(archive) as tar:
        member = tar.extractfile("report.json")
        assert member is not None
        report = json.load(member)
    assert report["files"] == {"train": ["train.npz"], "test": ["test.protobuf"],
                               "extra": ["data.libsvm", "enc.pkl", "part-0.parquet"]}
    assert report["protobuf"] == "0a03616263"
    assert {name: entry.get("ContentType") for name, entry in report["config"].items()} == {
        "train": "csv", "test": "csv", "extra": "csv"}
