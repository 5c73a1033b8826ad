"""One object-store contract, run against the local folder store and S3 (moto server)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from fedsage.errors import ConfigurationError, StorageError
from fedsage.storage import LocalStore, ObjectStore
from fedsage.storage.s3 import S3Store

from .conftest import REGION


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, s3: Any) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "buckets", "conformance")
    return S3Store("conformance", client=s3, region=REGION)


def test_put_list_download_roundtrip(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(b"1,2\n3,4\n")
    assert store.put_file("p/x/a.csv", source) == f"s3://{store.bucket}/p/x/a.csv"
    assert (
        store.put_stream("p/y/b.bin", io.BytesIO(b"\x00\x01")) == f"s3://{store.bucket}/p/y/b.bin"
    )
    store.put_file("q/c.csv", source)
    assert store.list("p/") == ["p/x/a.csv", "p/y/b.bin"]
    assert store.list("p/x") == ["p/x/a.csv"]
    assert store.list("nothing/") == []
    assert store.exists("p/x/a.csv") and not store.exists("p/x/missing.csv")
    out = store.download("p/y/b.bin", tmp_path / "deep" / "out.bin")
    assert out.read_bytes() == b"\x00\x01"


def test_overwrite_replaces_whole_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_stream("k/obj", io.BytesIO(b"first version, long"))
    store.put_stream("k/obj", io.BytesIO(b"second"))
    assert store.download("k/obj", tmp_path / "o").read_bytes() == b"second"


def test_download_of_missing_key_leaves_no_file(store: ObjectStore, tmp_path: Path) -> None:
    store.put_stream("k/present", io.BytesIO(b"x"))  # the bucket exists
    dest = tmp_path / "dl" / "missing.bin"
    with pytest.raises(StorageError, match="k/missing"):
        store.download("k/missing", dest)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == [] if dest.parent.exists() else True


def test_delete_prefix_counts_and_keeps_the_rest(store: ObjectStore) -> None:
    for key in ("job/data/train/train.csv", "job/data/test/test.csv", "job/source/s.tar.gz"):
        store.put_stream(key, io.BytesIO(b"x"))
    assert store.delete_prefix("job/data/") == 2
    assert store.list("job/") == ["job/source/s.tar.gz"]
    assert store.delete_prefix("job/data/") == 0


def test_bad_keys_are_refused(store: ObjectStore) -> None:
    with pytest.raises(ConfigurationError):
        store.put_stream("a/../b", io.BytesIO(b"x"))


# -- S3 only ---------------------------------------------------------------------


def test_bucket_is_created_once_in_the_session_region(s3: Any) -> None:
    store = S3Store("made-on-first-write", client=s3, region=REGION)
    assert "made-on-first-write" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    store.put_stream("a", io.BytesIO(b"1"))
    store.put_stream("b", io.BytesIO(b"2"))
    S3Store("made-on-first-write", client=s3, region=REGION).put_stream("c", io.BytesIO(b"3"))
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names.count("made-on-first-write") == 1
    location = s3.get_bucket_location(Bucket="made-on-first-write")["LocationConstraint"]
    assert location == REGION


def test_us_east_1_bucket_has_no_location_constraint(boto: Any) -> None:
    client = boto.client("s3", region_name="us-east-1")
    S3Store("virginia-bucket", client=client, region="us-east-1").put_stream("a", io.BytesIO(b"1"))
    location = client.get_bucket_location(Bucket="virginia-bucket")["LocationConstraint"]
    assert location in (None, "")  # S3 reports us-east-1 as no constraint


def test_large_file_goes_multipart(s3: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's 8 MiB multipart threshold
    store = S3Store("multipart", client=s3, region=REGION)
    store.put_file("big.bin", big)
    etag = s3.head_object(Bucket="multipart", Key="big.bin")["ETag"]
    assert "-" in etag  # a multipart upload's ETag ends with -<parts>
    assert store.download("big.bin", tmp_path / "back.bin").read_bytes() == big.read_bytes()


def test_list_and_delete_page_past_1000_keys(s3: Any) -> None:
    store = S3Store("many-keys", client=s3, region=REGION)
    store.ensure_bucket()
    keys = [f"p/{i:05d}" for i in range(1005)]
    # Written straight into moto's in-process backend: 1005 PUT requests take ~10 s.
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["global"]
    for key in keys:
        backend.put_object("many-keys", key, b"")
    assert store.list("p/") == keys
    assert store.delete_prefix("p/") == 1005
    assert s3.list_objects_v2(Bucket="many-keys").get("KeyCount") == 0


def test_reading_a_missing_bucket_names_bucket_and_fix(s3: Any) -> None:
    store = S3Store("never-created", client=s3, region=REGION)
    with pytest.raises(StorageError, match=r"never-created.*does not exist.*bucket_name"):
        store.list("x/")


def test_empty_prefix_delete_is_refused(s3: Any) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        S3Store("whatever", client=s3, region=REGION).delete_prefix("")


def test_default_bucket_requests_carry_the_expected_owner(s3: Any) -> None:
    # S3 answers 403 when the bucket belongs to another account; moto does not check
    # ExpectedBucketOwner, so this checks what fedsage sends instead.
    sent: list[tuple[str, Any]] = []
    s3.meta.events.register(
        "provide-client-params.s3.*",
        lambda params, model, **_: sent.append((model.name, params.get("ExpectedBucketOwner"))),
    )
    store = S3Store("owned-bucket", client=s3, region=REGION, expected_owner="123456789012")
    store.put_stream("a", io.BytesIO(b"1"))
    store.list("")
    store.exists("a")
    owners = {name: owner for name, owner in sent if name != "CreateBucket"}
    assert set(owners) >= {"HeadBucket", "PutObject", "ListObjectsV2", "HeadObject"}
    assert set(owners.values()) == {"123456789012"}
