"""Reproducible image layers: gzip tar changesets with fixed metadata.

The same folders always give the same bytes: entries are sorted, owners are 0:0 with
empty names, every mtime is :data:`LAYER_MTIME`, modes are normalised to 0755 / 0644,
and the gzip header carries no name and no time.  So a re-push of an unchanged model
finds every layer already in the registry.

A layer is written in one pass: the tar stream feeds a SHA-256 (the ``diff_id``, over
the uncompressed tar) and a gzip stream whose output feeds a second SHA-256 (the blob
``digest``, over the bytes stored in the registry).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["LAYER_MTIME", "Layer", "build_layer", "sha256_file"]

LAYER_MTIME = 0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A gzip-compressed layer blob on disk.

    Attributes
    ----------
    path : pathlib.Path
        The ``.tar.gz`` file.
    digest : str
        ``sha256:<hex>`` of the compressed blob (the manifest's layer digest).
    diff_id : str
        ``sha256:<hex>`` of the uncompressed tar (the config's ``rootfs.diff_ids``).
    size : int
        Size of the compressed blob in bytes.
    """

    path: Path
    digest: str
    diff_id: str
    size: int


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through."""

    def __init__(self, sink: BinaryIO | None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


class _TeeToGzip:
    """Feed tar output to the diff_id hash and to the gzip compressor."""

    def __init__(self, gz: gzip.GzipFile) -> None:
        self.gz = gz
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.gz.write(data)

    def flush(self) -> None:
        self.gz.flush()


def _walk(source: Path) -> Iterator[Path]:
    """Yield every path below ``source`` in a stable order (parents first)."""
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        here = Path(dirpath)
        if here != source:
            yield here
        for name in sorted(filenames):
            yield here / name


def _info(name: str, *, isdir: bool, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if isdir else tarfile.REGTYPE
    info.mode = 0o755 if isdir or mode & 0o100 else 0o644
    info.size = size
    info.mtime = LAYER_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _entries(sources: Iterable[tuple[Path, str]]) -> list[tuple[str, Path | None]]:
    """Map ``(folder, prefix)`` pairs to sorted, de-duplicated archive entries."""
    entries: dict[str, Path | None] = {}
    for folder, prefix in sources:
        prefix = prefix.strip("/")
        parts = prefix.split("/") if prefix else []
        for i in range(1, len(parts) + 1):  # parent folders of the prefix
            entries.setdefault("/".join(parts[:i]), None)
        for path in _walk(folder):
            rel = path.relative_to(folder).as_posix()
            name = f"{prefix}/{rel}" if prefix else rel
            if path.is_symlink():
                raise ValueError(f"{path} is a symbolic link; layers hold plain files only")
            entries[name] = None if path.is_dir() else path
    return sorted(entries.items())


def build_layer(sources: Iterable[tuple[Path, str]], out: Path) -> Layer:
    """Write a reproducible gzip layer holding the given folders.

    Parameters
    ----------
    sources : iterable of (pathlib.Path, str)
        Pairs of a local folder and the path it takes inside the image, e.g.
        ``(bundle.root / "opt", "opt")`` or ``(site_packages, "opt/fedsage/site-packages")``.
        A folder's own entries and its prefix's parent folders are included.
    out : pathlib.Path
        The ``.tar.gz`` file to write.

    Returns
    -------
    Layer
        The blob with its digest, diff_id and size.
    """
    entries = _entries(sources)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw:
        blob = _HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=6) as gz:
            tee = _TeeToGzip(gz)
            with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for name, path in entries:
                    if path is None:
                        tar.addfile(_info(name, isdir=True, mode=0o755))
                        continue
                    stat = path.stat()
                    info = _info(name, isdir=False, mode=stat.st_mode, size=stat.st_size)
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
    return Layer(
        path=out,
        digest="sha256:" + blob.sha.hexdigest(),
        diff_id="sha256:" + tee.sha.hexdigest(),
        size=blob.size,
    )


def sha256_file(path: Path) -> tuple[str, int]:
    """Return ``("sha256:<hex>", size)`` of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size
