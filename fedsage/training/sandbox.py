"""A private mount namespace in which a job's folder *is* ``/opt/ml``.

Scripts written for the SageMaker container may hard-code ``/opt/ml/model``.  On Linux
the child process enters a new mount namespace (inside an unprivileged user namespace
when not root) and bind-mounts the job's folder onto ``/opt/ml``; nothing changes
outside the namespace.  When ``/opt/ml`` does not exist, ``/opt`` is replaced inside
the namespace by a tmpfs in which the original entries are bound back, so even
``/opt/ml`` can be created without touching the host.  Where the kernel refuses, the
caller falls back to the job folder itself (see :func:`sandbox_available`).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["DISABLE_ENV", "enter_sandbox", "sandbox_available", "sandbox_preexec"]

DISABLE_ENV = "FEDSAGE_SANDBOX"
TARGET = "/opt/ml"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 1
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc: ctypes.CDLL, source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None
        ),
        f"mount {target}",
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def enter_sandbox(job_root: Path, staging: Path, *, isolate_network: bool = False) -> None:
    """Enter a private mount namespace where ``job_root`` is mounted at ``/opt/ml``.

    Runs in the child between fork and exec.  ``staging`` is an empty folder used to
    keep the original ``/opt`` reachable while a tmpfs replaces it.

    Raises
    ------
    OSError
        When the kernel refuses a step; nothing outside the namespace has changed.
    """
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    # A new network namespace has only a loopback that is down: no network at all, as
    # SageMaker's enable_network_isolation.
    network = _CLONE_NEWNET if isolate_network else 0
    if uid == 0:
        _check(libc.unshare(_CLONE_NEWNS | network), "unshare")
    else:
        _check(libc.unshare(_CLONE_NEWNS | _CLONE_NEWUSER | network), "unshare")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(libc, "none", "/", None, _MS_REC | _MS_PRIVATE)
    if not os.path.isdir(TARGET):
        if not os.path.isdir("/opt"):
            raise OSError(2, "/opt does not exist")
        _mount(libc, "/opt", str(staging), None, _MS_BIND | _MS_REC)
        _mount(libc, "tmpfs", "/opt", "tmpfs", 0)
        for entry in os.scandir(staging):
            path = os.path.join("/opt", entry.name)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), path)
            elif entry.is_dir():
                os.mkdir(path)
                _mount(libc, entry.path, path, None, _MS_BIND | _MS_REC)
            else:
                open(path, "w").close()
                _mount(libc, entry.path, path, None, _MS_BIND)
        os.mkdir(TARGET)
    _mount(libc, str(job_root), TARGET, None, _MS_BIND | _MS_REC)
    os.chdir(f"{TARGET}/code")


def sandbox_preexec(
    job_root: Path, staging: Path, *, isolate_network: bool = False
) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that calls :func:`enter_sandbox`."""

    def preexec() -> None:
        enter_sandbox(job_root, staging, isolate_network=isolate_network)

    return preexec


def sandbox_available(
    job_root: Path, staging: Path, *, isolate_network: bool = False
) -> tuple[bool, str]:
    """Try the sandbox with ``/bin/true``; return (works, reason when it does not).

    ``FEDSAGE_SANDBOX=0`` turns the sandbox off.
    """
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return False, f"{DISABLE_ENV}=0 is set"
    if not sys.platform.startswith("linux"):
        return False, f"private mount namespaces need Linux, this is {sys.platform}"
    try:
        subprocess.run(
            ["/bin/true"],
            preexec_fn=sandbox_preexec(job_root, staging, isolate_network=isolate_network),
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc) or type(exc).__name__
    return True, ""
