"""Safe extraction: every attack here wrote outside the destination or left files behind
on the extractor that relied on a text check of link targets and ``filter="data"``."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from fedsage._archive import ArchiveLimits, extract_safely, pack_dir
from fedsage.errors import EndpointError, StorageError

REPO = Path(__file__).resolve().parents[1]


def _add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "",
         data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def _path_max_chain(archive: Path) -> Path:
    """The CVE-2025-4517 shape: links whose physical path passes PATH_MAX, so that
    ``os.path.realpath`` gives up, and a link that climbs out through them."""
    component = "d" * 247
    steps = "abcdefghijklmnop"
    with tarfile.open(archive, "w:gz") as tar:
        path = ""
        for step in steps:
            _add(tar, os.path.join(path, component), tarfile.DIRTYPE)
            _add(tar, os.path.join(path, step), tarfile.SYMTYPE, link=component)
            path = os.path.join(path, component)
        climber = os.path.join(*steps, "l" * 254)
        _add(tar, climber, tarfile.SYMTYPE, link="../" * len(steps))
        # Read as text this stays inside ("l.../.." cancels); the kernel resolves the
        # climber first, to the destination itself, and then "..".
        _add(tar, "escape", tarfile.SYMTYPE, link=climber + "/../outside")
        _add(tar, "escape/pwned", data=b"written through a link\n")
    return archive


def test_path_max_symlink_chain_writes_nothing_anywhere(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _path_max_chain(tmp_path / "model.tar.gz")
    dest = tmp_path / "dest"
    with pytest.raises(StorageError, match=r"member 'a' is a symbolic link"):
        extract_safely(archive, dest)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz", "outside"]


def test_path_max_chain_refused_even_where_links_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    archive = _path_max_chain(tmp_path / "layer.tar.gz")
    with pytest.raises(StorageError, match="lies beneath the link 'a'"):
        extract_safely(archive, tmp_path / "dest", allow_symlinks=True)
    assert list((tmp_path / "outside").iterdir()) == []
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("alias", tarfile.SYMTYPE, "model.pkl", r"member 'alias' is a symbolic link \(to 'model.pkl'\)"),
        ("hard", tarfile.LNKTYPE, "model.pkl", r"member 'hard' is a hard link \(to 'model.pkl'\)"),
        ("/etc/evil", tarfile.REGTYPE, "", "has an absolute path"),
        ("a/../../evil", tarfile.REGTYPE, "", "contains '..'"),
        ("dev", tarfile.CHRTYPE, "", "is a device or FIFO"),
        ("sparse", tarfile.GNUTYPE_SPARSE, "", "is a sparse file"),
    ],
)
def test_members_refused_by_name_and_type(
    tmp_path: Path, name: str, kind: bytes, link: str, message: str
) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "model.pkl", data=b"model")
        _add(tar, name, kind, link=link)
    with pytest.raises(EndpointError, match=message):
        extract_safely(archive, tmp_path / "out", error=EndpointError)
    assert not (tmp_path / "out").exists()


def test_a_refusal_late_in_the_archive_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(20):
            _add(tar, f"part-{i}.bin", data=b"x" * 1000)
        _add(tar, "last", tarfile.SYMTYPE, link="part-0.bin")
    with pytest.raises(StorageError, match="'last'"):
        extract_safely(archive, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz", "out"]


def test_a_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        _add(tar, "a.bin", data=os.urandom(200_000))
        _add(tar, "b.bin", data=os.urandom(200_000))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:300_000])
    with pytest.raises(StorageError, match=r"cannot extract|truncated"):
        extract_safely(cut, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar", "good.tar"]


def test_member_and_size_limits_are_checked_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            _add(tar, f"f{i}", data=b"y" * 100)
    with pytest.raises(StorageError, match="more than 4 members"):
        extract_safely(archive, tmp_path / "out", limits=ArchiveLimits(max_members=4))
    with pytest.raises(StorageError, match="more than 499 bytes"):
        extract_safely(archive, tmp_path / "out", limits=ArchiveLimits(max_bytes=499))
    monkeypatch.setenv("FEDSAGE_ARCHIVE_MAX_BYTES", "250")
    with pytest.raises(StorageError, match="FEDSAGE_ARCHIVE_MAX_BYTES"):
        extract_safely(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("FEDSAGE_ARCHIVE_MAX_BYTES", "500")
    assert len(extract_safely(archive, tmp_path / "out")) == 5


def test_a_bad_limit_setting_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDSAGE_ARCHIVE_MAX_MEMBERS", "lots")
    with pytest.raises(ValueError, match="FEDSAGE_ARCHIVE_MAX_MEMBERS must be a whole number"):
        ArchiveLimits.from_env()


def test_duplicates_and_members_beneath_files_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.tar"
    with tarfile.open(twice, "w") as tar:
        _add(tar, "a.txt", data=b"1")
        _add(tar, "a.txt", data=b"2")
    with pytest.raises(StorageError, match=r"'a\.txt' appears twice"):
        extract_safely(twice, tmp_path / "out")
    beneath = tmp_path / "beneath.tar"
    with tarfile.open(beneath, "w") as tar:
        _add(tar, "a", data=b"1")
        _add(tar, "a/b", data=b"2")
    with pytest.raises(StorageError, match="beneath the file 'a'"):
        extract_safely(beneath, tmp_path / "out")


def test_inner_links_kept_only_where_allowed(tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "venv/bin", tarfile.DIRTYPE)
        _add(tar, "venv/bin/python3.11", data=b"#!")
        _add(tar, "venv/bin/python", tarfile.SYMTYPE, link="python3.11")
    extract_safely(archive, tmp_path / "layer", allow_symlinks=True)
    assert os.readlink(tmp_path / "layer" / "venv/bin/python") == "python3.11"
    outside = tmp_path / "out.tar"
    with tarfile.open(outside, "w") as tar:
        _add(tar, "venv/up", tarfile.SYMTYPE, link="../../etc")
    with pytest.raises(StorageError, match="outside the archive"):
        extract_safely(outside, tmp_path / "other", allow_symlinks=True)


def test_round_trip_merges_into_an_existing_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "train.py").write_text("print('hi')\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    archive = pack_dir(source, tmp_path / "sourcedir.tar.gz")
    dest = tmp_path / "code"
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "old.py").write_text("old")
    (dest / "run.sh").write_text("stale")
    names = extract_safely(archive, dest)
    assert sorted(names) == ["pkg", "pkg/train.py", "run.sh"]
    assert (dest / "pkg" / "train.py").read_text() == "print('hi')\n"
    assert (dest / "pkg" / "old.py").read_text() == "old"
    assert (dest / "run.sh").read_text() == "#!/bin/sh\n"
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o700
    assert (dest / "pkg" / "train.py").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code", "sourcedir.tar.gz", "src"]


def test_works_without_tarfile_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on Debian 12's Python 3.11.2: no data_filter, no extractall(filter=...)."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def old_extractall(self, path=".", members=None, *, numeric_owner=False):  # type: ignore[no-untyped-def]
        raise AssertionError("extract_safely must not rely on TarFile.extractall")

    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    (tmp_path / "outside").mkdir()
    with pytest.raises(StorageError, match="symbolic link"):
        extract_safely(_path_max_chain(tmp_path / "model.tar.gz"), tmp_path / "dest")
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        _add(tar, "model.pkl", data=b"m")
    assert extract_safely(good, tmp_path / "dest") == ["model.pkl"]


def test_debian_python_extracts_and_refuses(tmp_path: Path) -> None:
    """The same checks under the interpreter Debian users have, whatever its tarfile."""
    python = Path("/usr/bin/python3")
    assert python.exists(), "the CI machine is Debian: /usr/bin/python3 is expected"
    (tmp_path / "outside").mkdir()
    chain = _path_max_chain(tmp_path / "model.tar.gz")
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        _add(tar, "model.pkl", data=b"m")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path;"
        "from fedsage._archive import extract_safely;"
        "from fedsage.errors import StorageError\n"
        "print(extract_safely(Path(sys.argv[2]), Path(sys.argv[3])))\n"
        "try:\n"
        "    extract_safely(Path(sys.argv[4]), Path(sys.argv[5]))\n"
        "except StorageError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = subprocess.run(
        [str(python), "-I", "-c", script, str(REPO), str(good), str(tmp_path / "ok"),
         str(chain), str(tmp_path / "bad")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "['model.pkl']" in result.stdout
    assert "refused: refusing to extract model.tar.gz: member 'a' is a symbolic link" in result.stdout
    assert list((tmp_path / "outside").iterdir()) == []
    assert not (tmp_path / "bad").exists()
