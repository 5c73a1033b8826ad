"""Input listing (S3Prefix is a string prefix, ManifestFile, folders), output names, and
the precedence of request / container / defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsage.errors import ConfigurationError
from fedsage.scoring.data_processing import DataProcessing
from fedsage.scoring.transform_io import list_inputs, output_uri, store_output
from fedsage.scoring.transform_run import JobPlan, ModelFiles, resolve, server_env
from fedsage.storage import LocalStore
from fedsage.storage.local import store_root


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(store_root(), "batch-in")
    for key in ("d/part-1.csv", "d/part-2.csv", "d/partial/x.csv", "d/other.csv", "e/part-3.csv"):
        source = tmp_path / "src"
        source.write_text(key)
        store.put_file(key, source)
    return store


def test_s3prefix_is_a_string_prefix_not_a_folder(store: LocalStore) -> None:
    files = list_inputs("s3://batch-in/d/part", "S3Prefix")
    assert [f.uri for f in files] == [
        "s3://batch-in/d/part-1.csv",
        "s3://batch-in/d/part-2.csv",
        "s3://batch-in/d/partial/x.csv",
    ]
    assert [f.relative for f in files] == ["part-1.csv", "part-2.csv", "partial/x.csv"]
    assert [f.relative for f in list_inputs("s3://batch-in/d/", "S3Prefix")][-1] == "partial/x.csv"
    assert len(list_inputs("s3://batch-in/", "S3Prefix")) == 5


def test_manifest_lists_objects_under_its_prefix(store: LocalStore, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"prefix": "s3://batch-in/d/"}, "part-2.csv", "partial/x.csv"]))
    files = list_inputs(f"file://{manifest}", "ManifestFile")
    assert [f.relative for f in files] == ["part-2.csv", "partial/x.csv"]
    for bad in ([], [{"prefix": 1}], ["a.csv"], [{"prefix": "s3://batch-in/"}, 5]):
        manifest.write_text(json.dumps(bad))
        with pytest.raises(ConfigurationError, match="must be a JSON array"):
            list_inputs(str(manifest), "ManifestFile")
    manifest.write_text("{not json")
    with pytest.raises(ConfigurationError, match="is not JSON"):
        list_inputs(str(manifest), "ManifestFile")


def test_local_folders_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.csv").write_text("1\n")
    (tmp_path / "in" / "sub" / "b.csv").write_text("1\n")
    (tmp_path / "in" / ".hidden").write_text("1\n")
    assert [f.relative for f in list_inputs(str(tmp_path / "in"), "S3Prefix")] == [
        "a.csv",
        "sub/b.csv",
    ]
    with pytest.raises(ConfigurationError, match="neither an s3:// URI"):
        list_inputs(str(tmp_path / "nothing"), "S3Prefix")
    with pytest.raises(ConfigurationError, match="names no input file"):
        list_inputs("s3://batch-in/none/", "S3Prefix")


def test_outputs_are_moved_into_place(store: LocalStore, tmp_path: Path) -> None:
    assert (
        output_uri("s3://batch-in/out/", "partial/x.csv") == "s3://batch-in/out/partial/x.csv.out"
    )
    temp = tmp_path / "t"
    temp.write_bytes(b"1\n")
    store_output("s3://batch-in/out/partial/x.csv.out", temp)
    assert store.path("out/partial/x.csv.out").read_bytes() == b"1\n" and not temp.exists()
    temp.write_bytes(b"2\n")
    store_output(f"file://{tmp_path}/o/a.csv.out", temp)
    assert (tmp_path / "o" / "a.csv.out").read_bytes() == b"2\n"


def _plan(**changes: object) -> JobPlan:
    values: dict[str, object] = {
        "name": "j", "files": [], "output_path": "s3://b/o", "content_type": "text/csv",
        "compression": "None", "split_type": "Line", "accept": None, "assemble_with": "None",
        "processing": DataProcessing(), "instance_count": 1, "strategy": None,
        "max_payload": None, "max_concurrent": None, "env": {}, "retries": 3,
    }  # fmt: skip
    values.update(changes)
    return JobPlan(**values)  # type: ignore[arg-type]


def test_request_then_container_then_defaults() -> None:
    container = {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 2,
    }
    assert resolve(_plan(), {}) == {
        "MaxConcurrentTransforms": 1, "MaxPayloadInMB": 6, "BatchStrategy": "MultiRecord",
    }  # fmt: skip
    assert resolve(_plan(), container) == {
        "MaxConcurrentTransforms": 3, "MaxPayloadInMB": 2, "BatchStrategy": "SingleRecord",
    }  # fmt: skip
    requested = _plan(max_concurrent=2, max_payload=0, strategy="MultiRecord")
    assert resolve(requested, container) == {
        "MaxConcurrentTransforms": 2, "MaxPayloadInMB": 0, "BatchStrategy": "MultiRecord",
    }  # fmt: skip
    # MaxConcurrentTransforms=0 means "not set"; junk from the container is ignored.
    assert (
        resolve(_plan(max_concurrent=0), {"MaxConcurrentTransforms": "x"})[
            "MaxConcurrentTransforms"
        ]
        == 1
    )


def test_server_env_sets_batch_variables_only_when_requested() -> None:
    files = ModelFiles(Path("m"), None, "p.py", {"MODEL_VAR": "1", "X": "model"})
    env = server_env(_plan(env={"X": "job"}), files, "eu-west-1")
    assert env == {"MODEL_VAR": "1", "X": "job", "SAGEMAKER_REGION": "eu-west-1",
                   "SAGEMAKER_BATCH": "true"}  # fmt: skip
    env = server_env(_plan(max_payload=3, strategy="SingleRecord", max_concurrent=2), files, "r")
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "3"
    assert env["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "2"
