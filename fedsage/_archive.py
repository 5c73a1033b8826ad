"""gzip tar archives: packing a folder's contents, and extracting safely.

Every archive fedsage extracts (``model.tar.gz``, ``sourcedir.tar.gz``,
``output.tar.gz``) goes through :func:`extract_safely`.  The protection is fedsage's
own and does not depend on the interpreter's patch level:

- every member is checked before anything is written: no absolute path, no ``..``,
  no device or FIFO, no duplicate name, no symlink or hardlink (unless the caller
  allows symlinks, for image layers, and then no member may live under one);
- the member count and the total unpacked size are capped before writing;
- members are written by fedsage itself, never through a link (``O_NOFOLLOW``,
  ``O_EXCL``), into a fresh temporary sibling of the destination that is renamed
  into place only when the whole archive was written: a refused or broken archive
  leaves nothing behind.

Where the interpreter has :func:`tarfile.data_filter` (3.11.4+), it vets each member
too, as a second opinion.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ConfigurationError, FedsageError, StorageError

__all__ = ["ArchiveLimits", "extract_safely", "pack_dir"]

MAX_BYTES_ENV = "FEDSAGE_ARCHIVE_MAX_BYTES"
MAX_MEMBERS_ENV = "FEDSAGE_ARCHIVE_MAX_MEMBERS"
_DEFAULT_MAX_BYTES = 20 * 1024**3
_DEFAULT_MAX_MEMBERS = 100_000
_COPY_CHUNK = 1024 * 1024


def pack_dir(
    source: Path, dest: Path, *, only: list[Path] | None = None, extra: list[Path] | None = None
) -> Path:
    """Write the contents of ``source`` (not the folder itself) to the gzip tar ``dest``.

    ``only`` limits the archive to those paths (relative to ``source``), as the SDK does
    when ``sourcedir.tar.gz`` holds just the entry script.  ``extra`` files or folders are
    added at the archive's root under their own names (the SDK's ``dependencies``).
    Symbolic links are stored as the files they point to: extraction refuses links.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    entries = only if only is not None else sorted(p.relative_to(source) for p in source.iterdir())
    with tarfile.open(dest, "w:gz", compresslevel=6, dereference=True) as tar:
        for rel in entries:
            tar.add(source / rel, arcname=rel.as_posix())
        for path in extra or []:
            tar.add(path, arcname=path.name)
    return dest


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one archive may unpack to.

    Parameters
    ----------
    max_bytes : int, default=20 GiB
        Total size of the regular files, as the archive's headers declare them.
    max_members : int, default=100,000
        Number of members (files, folders and links).
    """

    max_bytes: int = _DEFAULT_MAX_BYTES
    max_members: int = _DEFAULT_MAX_MEMBERS

    @classmethod
    def from_env(cls) -> ArchiveLimits:
        """The defaults, overridden by ``FEDSAGE_ARCHIVE_MAX_BYTES`` / ``..._MAX_MEMBERS``."""
        return cls(
            max_bytes=_env_limit(MAX_BYTES_ENV, _DEFAULT_MAX_BYTES),
            max_members=_env_limit(MAX_MEMBERS_ENV, _DEFAULT_MAX_MEMBERS),
        )


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"the environment variable {name} must be a whole number >= 1; got {raw!r} "
            "instead. Unset it to use the default"
        )
    return value


class _Refused(Exception):
    """One member (or the archive as a whole) breaks a rule; the text says which."""


def _name_problem(name: str) -> str | None:
    parts = PurePosixPath(name).parts
    if not parts or name in (".", "./"):
        return None
    if name.startswith("/") or parts[0].endswith(":") or "\\" in name:
        return "has an absolute path"
    if ".." in parts:
        return "contains '..'"
    if "\x00" in name:
        return "contains a NUL character"
    return None


def _normalized(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name else "."


def _plan(
    tar: tarfile.TarFile, limits: ArchiveLimits, *, allow_symlinks: bool
) -> list[tarfile.TarInfo]:
    """Read every header and refuse the archive if any member breaks a rule."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        if len(members) >= limits.max_members:
            raise _Refused(
                f"has more than {limits.max_members:,} members; raise "
                f"{MAX_MEMBERS_ENV} if this archive is genuine"
            )
        members.append(member)
        problem = _name_problem(member.name)
        if problem is None:
            problem = _type_problem(member, allow_symlinks=allow_symlinks)
        if problem:
            raise _Refused(f"member {member.name!r} {problem}")
        if member.isreg():
            total += member.size
            if total > limits.max_bytes:
                raise _Refused(
                    f"unpacks to more than {limits.max_bytes:,} bytes; raise "
                    f"{MAX_BYTES_ENV} if this archive is genuine"
                )
    _check_tree(members)
    return members


def _type_problem(member: tarfile.TarInfo, *, allow_symlinks: bool) -> str | None:
    if member.islnk():
        return f"is a hard link (to {member.linkname!r}); archives may hold only files and folders"
    if member.issym():
        if not allow_symlinks:
            return (
                f"is a symbolic link (to {member.linkname!r}); model and code archives may "
                "hold only files and folders"
            )
        target = member.linkname
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), target))
        if target.startswith("/") or joined == ".." or joined.startswith("../"):
            return f"is a link to {target!r} outside the archive"
        return None
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "is a device or FIFO"
    if member.type == tarfile.GNUTYPE_SPARSE:
        return "is a sparse file"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or folder"
    return None


def _check_tree(members: list[tarfile.TarInfo]) -> None:
    """No name twice, and nothing beneath a link or beneath a file."""
    kinds: dict[str, str] = {}
    for member in members:
        name = _normalized(member.name)
        kind = "dir" if member.isdir() else "link" if member.issym() else "file"
        previous = kinds.get(name)
        if previous is not None and not (previous == kind == "dir"):
            raise _Refused(f"member {member.name!r} appears twice")
        kinds[name] = kind
    for member in members:
        parent = posixpath.dirname(_normalized(member.name))
        while parent not in ("", "."):
            above = kinds.get(parent)
            if above == "link":
                raise _Refused(
                    f"member {member.name!r} lies beneath the link {parent!r}; nothing may "
                    "be written through a link"
                )
            if above == "file":
                raise _Refused(f"member {member.name!r} lies beneath the file {parent!r}")
            parent = posixpath.dirname(parent)


def _second_opinion(member: tarfile.TarInfo, root: Path) -> None:
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(member, str(root))
    except tarfile.TarError as exc:
        raise _Refused(f"member {member.name!r} is refused by tarfile's filter: {exc}") from exc


def _write_members(tar: tarfile.TarFile, members: list[tarfile.TarInfo], root: Path) -> None:
    """Write every member below ``root`` (a fresh folder only this process writes)."""
    links: list[tarfile.TarInfo] = []
    for member in members:
        _second_opinion(member, root)
        name = _normalized(member.name)
        if name == ".":
            continue
        target = root / name
        if member.isdir():
            _make_dirs(root, target)
        elif member.issym():
            links.append(member)
        else:
            _make_dirs(root, target.parent)
            source = tar.extractfile(member)
            if source is None:
                raise _Refused(f"member {member.name!r} has no data")
            with source:
                _write_file(source, target, member)
    # Links last: by then every folder exists and no later member can pass through one.
    for member in links:
        target = root / _normalized(member.name)
        _make_dirs(root, target.parent)
        os.symlink(member.linkname, target)


def _make_dirs(root: Path, folder: Path) -> None:
    for part in reversed([folder, *folder.parents]):
        if part == root or root not in part.parents:
            continue
        try:
            os.mkdir(part, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(part).st_mode):
                raise _Refused(f"{part.relative_to(root)} is not a folder") from None


def _write_file(source: IO[bytes], target: Path, member: tarfile.TarInfo) -> None:
    mode = 0o700 if member.mode & 0o100 else 0o600
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, "wb") as out:
        written = 0
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            out.write(chunk)
    if written != member.size:
        raise _Refused(f"member {member.name!r} is truncated ({written} of {member.size} bytes)")
    with contextlib.suppress(OverflowError, ValueError):  # a nonsensical timestamp is harmless
        os.utime(target, (member.mtime, member.mtime))


def _move_into(staging: Path, dest: Path) -> None:
    """Put the staged tree at ``dest``: a rename, or a merge into an existing folder."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(staging, dest)
        return
    if not dest.is_dir():
        raise _Refused(f"the destination {dest} exists and is not a folder")
    if not any(dest.iterdir()):
        dest.rmdir()
        os.rename(staging, dest)
        return
    for entry in staging.iterdir():
        target = dest / entry.name
        if _is_real_dir(entry) and _is_real_dir(target):
            _move_into(entry, target)
        else:
            if _is_real_dir(target):
                shutil.rmtree(target)
            os.replace(entry, target)
    shutil.rmtree(staging, ignore_errors=True)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def extract_safely(
    archive: Path,
    dest: Path,
    *,
    error: type[FedsageError] = StorageError,
    limits: ArchiveLimits | None = None,
    allow_symlinks: bool = False,
) -> list[str]:
    """Extract a (compressed) tar archive into ``dest``, all or nothing.

    Parameters
    ----------
    archive : pathlib.Path
        The ``.tar`` / ``.tar.gz`` file.
    dest : pathlib.Path
        The folder to extract into.  Created if missing; an existing folder keeps its
        other files, and files of the archive replace files of the same name.
    error : type, default=StorageError
        The fedsage error class to raise, so callers keep their own vocabulary.
    limits : ArchiveLimits, optional
        Size and member caps; default :meth:`ArchiveLimits.from_env`.
    allow_symlinks : bool, default=False
        Keep symbolic links that point inside the archive (image layers carrying a
        virtualenv).  Members beneath a link are refused either way.  Model, code and
        output archives never allow links.

    Returns
    -------
    list of str
        The member names extracted.

    Raises
    ------
    FedsageError
        (of class ``error``) if the archive is missing, unreadable, unsafe or over a
        limit; ``dest`` is then as it was.
    """
    limits = limits or ArchiveLimits.from_env()
    staging: Path | None = None
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _plan(tar, limits, allow_symlinks=allow_symlinks)
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
            _write_members(tar, members, staging)
        _move_into(staging, dest)
        staging = None
    except _Refused as exc:
        raise error(
            f"refusing to extract {archive.name}: {exc}; rebuild the archive from a plain "
            "folder of files"
        ) from None
    except FileNotFoundError as exc:
        if not archive.exists():
            raise error(f"archive {archive} does not exist") from exc
        raise error(f"cannot extract {archive}: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise error(f"cannot extract {archive}: {exc}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return [member.name for member in members]
