"""gzip tar archives: packing a folder's contents, and extracting safely.

Every archive fedsage extracts (``model.tar.gz``, ``sourcedir.tar.gz``,
``output.tar.gz``, image layers) goes through :func:`extract_safely`.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path, PurePosixPath

from .errors import FedsageError, StorageError

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


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and parts[0].endswith(":")) or "\\" in name:
        return "has an absolute path"
    if ".." in parts:
        return "contains '..'"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "is a device or FIFO"
    if member.issym() or member.islnk():
        target = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        joined = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or joined == ".." or joined.startswith("../"):
            return f"is a link to {target!r} outside the archive"
        return None
    if not (member.isfile() or member.isdir()):
        return "is not a regular file or folder"
    return None


def extract_safely(
    archive: Path, dest: Path, *, error: type[FedsageError] = StorageError
) -> list[str]:
    """Extract a (compressed) tar archive into ``dest`` after checking every member.

    Absolute paths, ``..`` components, links that leave the archive, devices and FIFOs
    are refused before anything is written; Python's ``data`` filter is applied too.

    Parameters
    ----------
    archive : pathlib.Path
        The ``.tar`` / ``.tar.gz`` file.
    dest : pathlib.Path
        The folder to extract into (created if missing).
    error : type, default=StorageError
        The fedsage error class to raise, so callers keep their own vocabulary.

    Returns
    -------
    list of str
        The member names extracted.

    Raises
    ------
    FedsageError
        (of class ``error``) if the archive is missing, unreadable or unsafe.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = _member_problem(member)
                if problem:
                    raise error(
                        f"refusing to extract {archive.name}: member {member.name!r} "
                        f"{problem}; rebuild the archive from a plain folder of files"
                    )
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
    except FileNotFoundError as exc:
        raise error(f"archive {archive} does not exist") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise error(f"cannot extract {archive}: {exc}") from exc
    return [member.name for member in members]
