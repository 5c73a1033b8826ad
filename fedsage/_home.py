"""fedsage's home folder: where local state lives, atomic writes, and the registry.

Everything that must outlive a process (jobs, endpoints, Kyma deployments, the local
object store, runtimes) lives under one folder, ``FEDSAGE_HOME`` (default: the
platform's user data folder).  Records are kept in a small SQLite database that two
processes may use at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from .errors import ConfigurationError

if TYPE_CHECKING:  # imported when a registry is opened: a supervisor never opens one
    import sqlite3

__all__ = [
    "PRIVATE_UMASK",
    "Record",
    "Records",
    "Registry",
    "atomic_path",
    "atomic_write",
    "fedsage_home",
    "home_dir",
    "make_private_dirs",
    "open_private",
    "registry",
    "write_private",
]

HOME_ENV = "FEDSAGE_HOME"
#: The umask of every process fedsage starts: what they write is for this user only.
PRIVATE_UMASK = 0o077
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600
_checked_homes: set[Path] = set()


def fedsage_home() -> Path:
    """Return the home folder, created private (0700) if missing.

    ``FEDSAGE_HOME`` wins; otherwise the platform's user data folder for ``fedsage``.
    The home names the interpreters fedsage runs and the processes it signals, so a
    home that another user owns or may write to is refused.

    Raises
    ------
    ConfigurationError
        If the folder cannot be created, belongs to another user, or is writable by
        group or others.
    """
    raw = os.environ.get(HOME_ENV)
    if raw:
        home = Path(raw).expanduser()
    else:
        import platformdirs  # only when FEDSAGE_HOME is unset: job runners always set it

        home = Path(platformdirs.user_data_dir("fedsage"))
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        home.mkdir(mode=_PRIVATE_DIR, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create fedsage's home folder {home}: {exc.strerror}; "
            f"set {HOME_ENV} to a writable folder"
        ) from exc
    home = home.resolve()
    if home not in _checked_homes:
        _check_home(home)
        _checked_homes.add(home)
    return home


def _check_home(home: Path) -> None:
    info = home.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigurationError(
            f"fedsage's home folder {home} belongs to another user (uid {info.st_uid}); "
            f"set {HOME_ENV} to a folder of your own"
        )
    if info.st_mode & 0o022:
        raise ConfigurationError(
            f"fedsage's home folder {home} is writable by group or others (mode "
            f"{stat.filemode(info.st_mode)}), so another user could change what fedsage "
            f"runs; make it private with: chmod 700 {home}, or set {HOME_ENV} to another folder"
        )
    if info.st_mode & 0o077:  # a home made by an older fedsage: ours, so make it private
        os.chmod(home, _PRIVATE_DIR)


def home_dir(*parts: str) -> Path:
    """The folder ``FEDSAGE_HOME/<parts...>``, each level created private if missing."""
    return make_private_dirs(fedsage_home().joinpath(*parts))


def make_private_dirs(folder: Path) -> Path:
    """Create ``folder`` and any missing parents with mode 0700; return ``folder``."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            level.mkdir(mode=_PRIVATE_DIR)
    return folder


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) as a file only this user may read."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open_private(path, "wb") as handle:
        handle.write(raw)


def open_private(path: Path, mode: str = "ab") -> Any:
    """Open ``path`` for writing (``wb`` or ``ab``), creating it with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, _PRIVATE_FILE)
    os.fchmod(fd, _PRIVATE_FILE)
    return os.fdopen(fd, mode)


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path`` and move it into place on success.

    On any exception the temporary file is removed and ``path`` is left untouched,
    so a reader never sees a half-written file.  The file is private (0600), and so are
    the folders created for it.
    """
    make_private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file name beside ``path`` for a writer that takes a name, not a handle.

    The name lies in a private (0700) folder created next to ``path``, so it cannot
    clash with another writer and nothing the writer leaves there (its own temporary
    files too) survives.  On success the file is made private (0600), ``fsync``-ed and
    moved into place; on any exception the folder is removed and ``path`` is left
    untouched, so a reader never sees a half-written file.

    Parameters
    ----------
    path : pathlib.Path
        The file to create (replaced if it exists).

    Yields
    ------
    pathlib.Path
        Where the writer writes (it does not exist yet).

    Raises
    ------
    FileNotFoundError
        If the writer wrote nothing at the yielded name.
    """
    make_private_dirs(path.parent)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    try:
        tmp = folder / path.name
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fchmod(fd, _PRIVATE_FILE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, name)
)
"""


_CONNECTIONS: dict[tuple[int, int, Path], sqlite3.Connection] = {}


class Registry:
    """A small key-value registry of JSON records, safe for several processes.

    Records are grouped by ``kind`` (``job``, ``endpoint``, ``kyma`` ...) and named
    uniquely within a kind.  Each call opens its own connection, so a registry object
    may be shared freely; writes take SQLite's write lock (``BEGIN IMMEDIATE``), so a
    read-modify-write in :meth:`update` is never lost to a concurrent writer.

    Parameters
    ----------
    path : pathlib.Path
        The SQLite file; created with its table on first use.
    """

    _ready: ClassVar[set[Path]] = set()

    def __init__(self, path: Path) -> None:
        self.path = path
        if path not in Registry._ready:
            path.parent.mkdir(parents=True, exist_ok=True)
            # SQLite gives its -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, _PRIVATE_FILE))
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
            Registry._ready.add(path)

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per process, thread and file: opening and closing a WAL
        # database costs a checkpoint each time, which dominated a status update.
        import sqlite3

        key = (os.getpid(), threading.get_ident(), self.path)
        conn = _CONNECTIONS.get(key)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            # In WAL mode NORMAL keeps the database consistent after a crash; it only
            # skips an fsync per commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            _CONNECTIONS[key] = conn
        yield conn

    def add(self, kind: str, name: str, data: dict[str, Any]) -> None:
        """Insert a new record; raise :class:`KeyError` if the name is taken."""
        now = time.time()
        from sqlite3 import IntegrityError

        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO records (kind, name, data, created, updated)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (kind, name, json.dumps(data, default=str), now, now),
                )
            except IntegrityError as exc:
                raise KeyError(f"a {kind} named {name!r} already exists") from exc

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return the record, or ``None`` when there is none."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT data FROM records WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def update(self, kind: str, name: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into an existing record and return the new record.

        Raises
        ------
        KeyError
            If there is no such record.
        """

        def merge(data: dict[str, Any]) -> dict[str, Any]:
            data.update(changes)
            return data

        return self.modify(kind, name, merge)

    def modify(
        self, kind: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace a record by ``change(record)``, read and written under one write lock.

        Raises
        ------
        KeyError
            If there is no such record.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT data FROM records WHERE kind = ? AND name = ?", (kind, name)
                ).fetchone()
                if row is None:
                    raise KeyError(f"no {kind} named {name!r}")
                data = change(json.loads(row[0]))
                conn.execute(
                    "UPDATE records SET data = ?, updated = ? WHERE kind = ? AND name = ?",
                    (json.dumps(data, default=str), time.time(), kind, name),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return data

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Return every record of ``kind``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT data FROM records WHERE kind = ? ORDER BY created, name", (kind,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def delete(self, kind: str, name: str) -> bool:
        """Remove a record; return whether it existed."""
        with self._connect() as conn:
            cursor = conn.execute("DELETE FROM records WHERE kind = ? AND name = ?", (kind, name))
        return cursor.rowcount > 0


def registry() -> Registry:
    """Return the registry under the current home folder."""
    return Registry(fedsage_home() / "registry.sqlite3")


class Record(Protocol):
    """What :class:`Records` keeps: a named dataclass that round-trips through a dict."""

    @property
    def name(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Record)


class Records(Generic[R]):
    """Typed access to the registry records of one kind.

    Parameters
    ----------
    kind : str
        The registry kind (``job``, ``endpoint``, ``kyma``).
    from_dict : callable
        Builds a record from its stored dict (the record class's ``from_dict``).
    missing : callable
        Builds the error raised for an unknown name (it names the listing command).
    """

    def __init__(
        self,
        kind: str,
        from_dict: Callable[[dict[str, Any]], R],
        missing: Callable[[str], Exception],
    ) -> None:
        self.kind = kind
        self._from_dict = from_dict
        self._missing = missing

    def add(self, record: R) -> None:
        """Store a new record; raise :class:`KeyError` if the name is taken."""
        registry().add(self.kind, record.name, record.to_dict())

    def find(self, name: str) -> R | None:
        """The record named ``name``, or ``None``."""
        data = registry().get(self.kind, name)
        return None if data is None else self._from_dict(data)

    def get(self, name: str) -> R:
        """The record named ``name``; raise the kind's "no such" error otherwise."""
        record = self.find(name)
        if record is None:
            raise self._missing(name)
        return record

    def modify(self, name: str, change: Callable[[R], None]) -> R:
        """Apply ``change`` to the stored record under the registry's write lock."""
        result: list[R] = []

        def apply(data: dict[str, Any]) -> dict[str, Any]:
            record = self._from_dict(data)
            change(record)
            result.append(record)
            return record.to_dict()

        try:
            registry().modify(self.kind, name, apply)
        except KeyError:
            raise self._missing(name) from None
        return result[0]

    def all(self) -> list[R]:
        """Every record of the kind, oldest first."""
        return [self._from_dict(data) for data in registry().list(self.kind)]

    def delete(self, name: str) -> bool:
        """Remove a record; return whether it existed."""
        return registry().delete(self.kind, name)
