"""The local object store: a folder tree that holds ``s3://bucket/key``-shaped objects."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from .._home import atomic_write, home_dir, make_private_dirs
from ..errors import StorageError
from .base import ObjectStore
from .uris import check_bucket_name, check_key, file_uri_to_path, parse_s3_uri

__all__ = ["LocalStore", "fetch_uri", "put_uri", "store_root", "uri_exists"]

_COPY_CHUNK = 1 << 20


def store_root() -> Path:
    """The folder that holds the local object store's buckets, ``$FEDSAGE_HOME/s3``."""
    return home_dir("s3")


_FICLONE = 0x40049409  # Linux ioctl: share the blocks copy-on-write (btrfs, XFS)


def _clone_or_copy(source: Path, dest: Path) -> None:
    """Copy ``source`` to the new file ``dest``: a reflink where the file system has it."""
    with open(source, "rb") as src, open(dest, "xb") as out:
        try:
            import fcntl

            fcntl.ioctl(out.fileno(), _FICLONE, src.fileno())
            return
        except (ImportError, OSError):
            pass
    shutil.copyfile(source, dest)


class LocalStore(ObjectStore):
    """A bucket stored as the folder ``<root>/<bucket>``; keys are relative paths in it.

    Parameters
    ----------
    root : pathlib.Path
        The folder that holds every bucket (``$FEDSAGE_HOME/s3``).
    bucket : str
        The bucket name, checked with S3's rules; its folder is created.
    """

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = check_bucket_name(bucket)
        self.root = make_private_dirs(root / bucket)

    def __repr__(self) -> str:
        return f"LocalStore(bucket={self.bucket!r}, root={str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Return the file that holds ``key``."""
        return self.root / check_key(key)

    def put_file(self, key: str, path: Path) -> str:
        target = self.path(key)
        try:
            with atomic_write(target) as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
        except OSError as exc:
            raise StorageError(f"cannot store {path} as {self.uri(key)}: {exc}") from exc
        return self.uri(key)

    def put_temp_file(self, key: str, path: Path) -> str:
        target = self.path(key)
        make_private_dirs(target.parent)
        try:
            os.replace(path, target)
        except OSError:  # another file system: copy instead
            return self.put_file(key, path)
        os.chmod(target, 0o600)
        return self.uri(key)

    def put_stream(self, key: str, stream: BinaryIO) -> str:
        target = self.path(key)
        try:
            with atomic_write(target) as out:
                shutil.copyfileobj(stream, out, _COPY_CHUNK)
        except OSError as exc:
            raise StorageError(f"cannot store {self.uri(key)}: {exc}") from exc
        return self.uri(key)

    def download(self, key: str, dest: Path) -> Path:
        source = self.path(key)
        if not source.is_file():
            raise StorageError(f"{self.uri(key)} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Always a copy, never a link: whoever gets the file (a training script
            # rewriting its input, say) must not be able to change the stored object.
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            _clone_or_copy(source, dest)
        except OSError as exc:
            raise StorageError(f"cannot copy {self.uri(key)} to {dest}: {exc}") from exc
        return dest

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith("."):  # temporary files of atomic_write
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.path(key).unlink(missing_ok=True)
        self._prune_empty_dirs()
        return len(keys)

    def _prune_empty_dirs(self) -> None:
        for dirpath, _dirs, _files in sorted(os.walk(self.root), key=lambda t: -len(t[0])):
            path = Path(dirpath)
            if path != self.root and not any(path.iterdir()):
                path.rmdir()


# Local mode also addresses objects by URI: a job's output_path may name another bucket
# of the local store, or a file:// folder as the SDK's local mode allows.


def put_uri(uri: str, path: Path) -> str:
    """Store the file ``path`` at ``uri`` (``s3://`` in the local store, or ``file://``)."""
    if uri.startswith("file://"):
        target = file_uri_to_path(uri, "uri")
        try:
            with atomic_write(target) as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
        except OSError as exc:
            raise StorageError(f"cannot write {uri}: {exc}") from exc
        return uri
    location = parse_s3_uri(uri, "uri")
    return LocalStore(store_root(), location.bucket).put_file(location.key, path)


def fetch_uri(uri: str, dest: Path) -> Path:
    """Copy the object at ``uri`` (``s3://`` in the local store, or ``file://``) to ``dest``."""
    if uri.startswith("file://"):
        source = file_uri_to_path(uri, "uri")
        if not source.is_file():
            raise StorageError(f"{uri} does not exist")
        make_private_dirs(dest.parent)
        if dest.exists():
            dest.unlink()
        _clone_or_copy(source, dest)
        return dest
    location = parse_s3_uri(uri, "uri")
    return LocalStore(store_root(), location.bucket).download(location.key, dest)


def uri_exists(uri: str) -> bool:
    """Whether an object exists at ``uri`` (``s3://`` in the local store, or ``file://``)."""
    if uri.startswith("file://"):
        return file_uri_to_path(uri, "uri").is_file()
    location = parse_s3_uri(uri, "uri")
    return LocalStore(store_root(), location.bucket).exists(location.key)
