"""gzip tar archives: packing a folder's contents, and extracting safely."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from .errors import StorageError

__all__ = ["extract_safely", "pack_dir"]


def pack_dir(source: Path, dest: Path, *, only: list[Path] | None = None) -> Path:
    """Write the contents of ``source`` (not the folder itself) to the gzip tar ``dest``.

    ``only`` limits the archive to those paths (relative to ``source``), as the SDK does
    when ``sourcedir.tar.gz`` holds just the entry script.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    entries = only if only is not None else sorted(p.relative_to(source) for p in source.iterdir())
    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        for rel in entries:
            tar.add(source / rel, arcname=rel.as_posix())
    return dest


def _check_member(member: tarfile.TarInfo, root: Path) -> None:
    target = (root / member.name).resolve()
    if member.name.startswith("/") or not target.is_relative_to(root):
        raise StorageError(f"archive member {member.name!r} would be written outside {root}")
    if member.islnk() or member.issym():
        link = (target.parent / member.linkname).resolve()
        if os.path.isabs(member.linkname) or not link.is_relative_to(root):
            raise StorageError(f"archive member {member.name!r} links outside {root}")
    if member.isdev() or member.isfifo():
        raise StorageError(f"archive member {member.name!r} is a device or pipe")


def extract_safely(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest``, refusing members that escape it.

    Raises
    ------
    StorageError
        For absolute paths, ``..`` components, links pointing outside ``dest``,
        devices, or a corrupt archive.  Nothing is extracted in that case.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root)
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StorageError(f"cannot extract {archive.name}: {exc}") from exc
    return dest
