"""The object-store interface: a bucket of keys, as S3 has, and nothing about SageMaker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

__all__ = ["ObjectStore"]


class ObjectStore(ABC):
    """One bucket of an object store.

    Implementations: :class:`~fedsage.storage.local.LocalStore` (a folder tree) and
    :class:`~fedsage.storage.s3.S3Store` (Amazon S3).  Writes are atomic: a reader sees
    either the previous object or the whole new one.
    """

    bucket: str

    def uri(self, key: str) -> str:
        """Return the ``s3://bucket/key`` URI of ``key``."""
        return f"s3://{self.bucket}/{key}"

    @abstractmethod
    def put_file(self, key: str, path: Path) -> str:
        """Store the file at ``path`` under ``key``; return the object's URI."""

    def put_temp_file(self, key: str, path: Path) -> str:
        """Store a temporary file that the caller will not use again; return the URI.

        Stores that can take the file over without copying it (the local folder tree)
        do so; the default copies it like :meth:`put_file`.
        """
        return self.put_file(key, path)

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO) -> str:
        """Store everything read from ``stream`` under ``key``; return the URI."""

    @abstractmethod
    def download(self, key: str, dest: Path) -> Path:
        """Copy the object ``key`` to the file ``dest``; return ``dest``."""

    def extract(self, key: str, dest: Path) -> Path | None:
        """Download the tar archive ``key`` and extract it safely into ``dest``.

        Returns ``dest``, or ``None`` when there is no such object.
        """
        import tempfile

        from .._archive import extract_safely

        if not self.exists(key):
            return None
        with tempfile.TemporaryDirectory(prefix="fedsage-extract-") as tmp:
            archive = self.download(key, Path(tmp) / Path(key).name)
            extract_safely(archive, dest)
        return dest

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object ``key`` exists."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Return the keys that start with ``prefix``, sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; return how many."""
