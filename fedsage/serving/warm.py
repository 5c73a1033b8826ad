"""Warm parents: one pre-imported process per runtime that forks the endpoints' zygotes.

A supervisor that preloads its model asks the runtime's warm parent for its zygote
instead of starting a fresh interpreter (see ``_worker/fedsage_worker/warm.py``): the
libraries are imported already, so the zygote only loads the model.  The first endpoint of
a runtime starts the warm parent (and pays for the imports once); it stops on its own
when its last zygote exits, i.e. when the last endpoint using it is deleted.

Which warm parent an endpoint may use is decided by its *key*: the interpreter plus every
environment variable a library could read while it is imported.  The variables that only
describe one endpoint (``SAGEMAKER_PROGRAM``, its port, body limit ...) and a shell's
bookkeeping (``PWD``, ``SHLVL`` ...) are left out; any other difference, a user's
``OMP_NUM_THREADS`` for instance, gives the endpoint a warm parent of its own.  The forked
zygote then takes the endpoint's exact environment.

Each warm parent has a private folder, ``FEDSAGE_HOME/warm/<key>/``, with its socket, its
log and ``parent.json`` (PID and start time), which ``fedsage endpoints list`` reads; the
learned module lists live beside those folders.  ``FEDSAGE_WARM=0`` turns them off.

The process that writes an endpoint's config decides the address (:func:`with_address`),
so a supervisor, which lives as long as its endpoint, imports neither ``hashlib``
(OpenSSL) nor the registry (SQLite): about 3 MiB less for every endpoint.  For the same
reason :mod:`fedsage._home` (``tempfile``, ``shutil`` ...) and :mod:`fedsage._process`
(``dataclasses``) are imported inside the functions that need them: a supervisor that joins
a running warm parent needs neither, and the one that starts it only ``_home``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._pid import process_start

if TYPE_CHECKING:
    from .supervisor import ServerConfig

__all__ = [
    "WARM_ENV",
    "WarmAddress",
    "ensure_warm_parent",
    "import_env",
    "list_warm_parents",
    "warm_address",
    "warm_enabled",
    "warm_key",
    "with_address",
]

log = logging.getLogger(__name__)

#: ``FEDSAGE_WARM=0`` starts every zygote as a fresh interpreter.
WARM_ENV = "FEDSAGE_WARM"
_RECORD = "parent.json"
#: What one endpoint sets for its own zygote: never part of a warm parent's key.
PER_ENDPOINT = frozenset(
    {
        "SAGEMAKER_PROGRAM",
        "SAGEMAKER_SUBMIT_DIRECTORY",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        "SAGEMAKER_BIND_TO_PORT",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        "SAGEMAKER_CONTAINER_LOG_LEVEL",
        "SM_MODEL_DIR",
        "FEDSAGE_MAX_BODY",
        "FEDSAGE_ALLOWED_HOSTS",
        "FEDSAGE_DEBUG",
        "FEDSAGE_DEFAULT_CONTENT_TYPE",
        "FEDSAGE_HANG_GRACE",
    }
)
# A shell's or a notebook kernel's bookkeeping, read by no library at import time.
_NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "PS1", "PS2"})
_NOISE_PREFIXES = ("JPY_", "VSCODE_", "PYDEVD_")
_START_TIMEOUT = 10.0  # seconds for a new warm parent to listen (it binds before importing)
_PEERCRED = struct.Struct("3i")
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def warm_enabled() -> bool:
    """Whether zygotes come from warm parents (``FEDSAGE_WARM``, default on)."""
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def import_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of a zygote's environment that libraries may read while being imported.

    Parameters
    ----------
    env : mapping
        The zygote's whole environment (``supervisor.worker_env``).

    Returns
    -------
    dict
        ``env`` without the per-endpoint serving variables and a shell's bookkeeping: the
        warm parent's own environment, and what its key is made of.
    """
    return {
        k: v
        for k, v in env.items()
        if k not in PER_ENDPOINT and k not in _NOISE and not k.startswith(_NOISE_PREFIXES)
    }


def _digest(text: str | bytes, length: int) -> str:
    import hashlib  # here: only the process that writes a config hashes

    raw = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()[:length]


def warm_key(python: str, env: Mapping[str, str]) -> str:
    """The warm parent an endpoint may share: a digest of its interpreter and import env."""
    return _digest(json.dumps([str(python), sorted(import_env(env).items())]), 16)


class WarmAddress(NamedTuple):
    """Where a warm parent lives: its key, its socket and its learned module list."""

    key: str
    socket: str
    modules: str


def warm_address(python: str, env: Mapping[str, str]) -> WarmAddress | None:
    """The address of the warm parent for ``python`` and ``env``.

    Parameters
    ----------
    python : str
        The runtime's interpreter.
    env : mapping
        The zygote's environment (its import part picks the warm parent).

    Returns
    -------
    WarmAddress or None
        None when warm parents are off (``FEDSAGE_WARM=0``) or no socket path fits.
    """
    if not warm_enabled():
        return None
    from .._home import home_dir

    key = warm_key(python, env)
    path = _socket_path(home_dir("warm", key), key)
    if path is None:
        return None
    modules = home_dir("warm") / f"modules-{_digest(python, 16)}.txt"
    return WarmAddress(key, str(path), str(modules))


def with_address(config: ServerConfig) -> ServerConfig:
    """``config`` with the address of its warm parent filled in (when it uses one).

    Parameters
    ----------
    config : ServerConfig
        An endpoint's server settings.

    Returns
    -------
    ServerConfig
        A copy whose ``warm_address`` is set, or ``config`` itself when it does not
        preload a warm zygote or warm parents are off.
    """
    from .supervisor import worker_count, worker_env

    if not (config.warm and config.preload) or config.warm_address:
        return config
    address = warm_address(config.python, worker_env(config, worker_count(config)))
    if address is None:
        return config
    return config.replace(warm_address=address._asdict())


def _record_path(key: str) -> Path:
    from .._home import home_dir

    return home_dir("warm", key) / _RECORD


def _owner(path: Path) -> int | None:
    """The PID listening on ``path``, or None when nothing answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
            raw = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return None
    pid, uid, _ = _PEERCRED.unpack(raw)
    return pid if uid == os.getuid() else None


def _socket_path(folder: Path, key: str) -> Path | None:
    """Where the warm parent of ``key`` listens: in its folder, or a short private one.

    A unix socket's address holds 108 bytes, so under a long ``FEDSAGE_HOME`` the socket
    goes to ``<temp dir>/fedsage-<uid>/`` (created 0700; used only when it is a real
    folder of this user that nobody else can enter), named after the home and the key,
    so two homes never share a warm parent.  None (no warm parent) when neither fits.
    """
    path = folder / "warm.sock"
    if len(os.fsencode(str(path))) <= _MAX_SOCKET_PATH:
        return path
    import stat
    import tempfile

    from .._home import fedsage_home

    private = Path(tempfile.gettempdir()) / f"fedsage-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        private.mkdir(mode=0o700)
    info = private.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("no warm parent: %s is not a private folder of this user (mode 0700); "
                    "deploys start a fresh interpreter. Remove it, or use a shorter "
                    "FEDSAGE_HOME", private)
        return None
    home = _digest(os.fsencode(str(fedsage_home())), 12)
    short = private / f"{home}-{key}.sock"
    if len(os.fsencode(str(short))) > _MAX_SOCKET_PATH:
        log.info("no warm parent: the socket paths %s and %s are too long", path, short)
        return None
    return short


def ensure_warm_parent(
    python: str,
    env: Mapping[str, str],
    runtime: str,
    worker_path: Path,
    address: WarmAddress | None = None,
    *,
    start: bool = True,
) -> tuple[str, subprocess.Popen[bytes] | None] | None:
    """The socket of the warm parent for ``python`` and ``env``, started now if none runs.

    Parameters
    ----------
    python : str
        The runtime's interpreter.
    env : mapping
        The zygote's environment (its import part picks the warm parent).
    runtime : str
        A label for listings (the framework version).
    worker_path : pathlib.Path
        The worker folder the interpreter runs.
    address : WarmAddress, optional
        Where the warm parent lives, as :func:`warm_address` gave it to the process that
        wrote the config; worked out here when missing.
    start : bool, default=True
        Start one when none runs; ``False``: only a running one is used.

    Returns
    -------
    tuple or None
        ``(socket path, process)``: the process when this call started it (the caller
        reaps it), else None; or None when warm parents are off or cannot be used here
        (the caller starts its zygote as a fresh interpreter), or when none runs and
        ``start`` is false.
    """
    if address is None:
        address = warm_address(python, env)
        if address is None:
            return None
    elif not warm_enabled():
        return None
    path = Path(address.socket)
    if _owner(path) is not None:
        return str(path), None
    if not start:
        log.info("no warm parent runs for %s; starting the zygote cold", runtime or python)
        return None
    from .._home import PRIVATE_UMASK, home_dir, open_private, write_json_atomic

    folder = home_dir("warm", address.key)
    with open_private(folder / "warm.log", "ab") as out:
        proc = subprocess.Popen(
            [python, str(worker_path), "--warm", str(path), "--modules", address.modules],
            cwd=folder,
            env=import_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    # It binds before it imports anything; one that lost a race with another start
    # exits at once, and the other one answers.
    deadline = time.monotonic() + _START_TIMEOUT
    owner = _owner(path)
    while owner is None and time.monotonic() < deadline:
        exited = proc.poll() is not None
        time.sleep(0.005)
        owner = _owner(path)
        if exited and owner is None:
            break
    if owner is None:
        log.warning("the warm parent for %s did not start; see %s", python, folder / "warm.log")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return None
    record = {
        "Name": address.key,
        "Runtime": runtime,
        "Python": python,
        "Pid": owner,
        # ProcessIdentity.of(owner).to_dict(), without importing dataclasses here
        "Process": {"pid": owner, "start": process_start(owner)},
        "CreationTime": time.time(),
        "Socket": str(path),
        "Log": str(folder / "warm.log"),
    }
    # Two supervisors racing for one key both find the same owner: either write is right.
    write_json_atomic(_record_path(address.key), record)
    log.info("started the warm parent %d for %s (%s)", owner, runtime, python)
    return str(path), proc


def list_warm_parents() -> list[dict[str, Any]]:
    """The running warm parents, oldest first.

    A stopped warm parent's ``parent.json`` is skipped, not removed: the next start of
    its key replaces it.

    Returns
    -------
    list of dict
        ``Name`` (the key), ``Runtime``, ``Python``, ``Pid``, ``CreationTime`` (epoch
        seconds), ``Log``.
    """
    from .._home import home_dir
    from .._process import ProcessIdentity

    running = []
    for path in home_dir("warm").glob(f"*/{_RECORD}"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable: not a warm parent we can use
            continue
        process = ProcessIdentity.from_dict(record.get("Process"))
        if process is None or not process.alive():
            continue
        running.append({k: record.get(k) for k in
                        ("Name", "Runtime", "Python", "Pid", "CreationTime", "Log")})
    return sorted(running, key=lambda r: r["CreationTime"] or 0.0)
