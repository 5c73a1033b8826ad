"""Control-socket messages: a few ASCII words plus file descriptors (``SCM_RIGHTS``).

The supervisor talks to the zygote, and the zygote hands connections to its workers, over
``AF_UNIX`` / ``SOCK_SEQPACKET`` socket pairs, so message boundaries are kept by the
kernel: one ``send`` is one message.  A message is at most ``MAX_MESSAGE`` bytes of words
joined by spaces and at most ``MAX_FDS`` descriptors.  The supervisor (fedsage's own
Python) and the worker (a runtime's Python 3.7+) import this same module.
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any, Iterable, Sequence

__all__ = [
    "MAX_FDS",
    "MAX_JSON",
    "MAX_MESSAGE",
    "recv_json",
    "recv_message",
    "send_json",
    "send_message",
]

#: Descriptors one message may carry (every message today carries at most one).
MAX_FDS = 4
#: Bytes of words one message may carry.
MAX_MESSAGE = 512
#: Bytes of one JSON message (a warm parent's spawn request carries an environment).
MAX_JSON = 64 * 1024
_FD_SIZE = array.array("i").itemsize
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * _FD_SIZE)


def send_message(control: socket.socket, words: Iterable[Any], fds: Sequence[int] = ()) -> None:
    """Send one message: ``words`` joined by spaces, and optionally file descriptors.

    Parameters
    ----------
    control : socket.socket
        One end of a ``SOCK_SEQPACKET`` socket pair.
    words : iterable
        The command, e.g. ``["fork", 0]`` (each word is sent as ``str(word)``).
    fds : sequence of int, optional
        File descriptors to pass along (at most ``MAX_FDS``).

    Raises
    ------
    ValueError
        If there are more than ``MAX_FDS`` descriptors or the words exceed ``MAX_MESSAGE``.
    OSError
        If the message cannot be sent (the peer is gone, or its queue is full on a
        non-blocking socket).
    """
    data = " ".join(str(w) for w in words).encode("ascii")
    if len(data) > MAX_MESSAGE or len(fds) > MAX_FDS:
        raise ValueError(
            f"a control message holds at most {MAX_MESSAGE} bytes and {MAX_FDS} descriptors"
        )
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        control.sendmsg([data], ancillary)
    else:
        control.send(data)


def recv_message(control: socket.socket, block: bool = True) -> tuple[list[str], list[int]]:
    """Receive one message.

    Parameters
    ----------
    control : socket.socket
        One end of a ``SOCK_SEQPACKET`` socket pair.
    block : bool, default=True
        Wait for a message; ``False`` raises ``BlockingIOError`` when none is queued
        (as does a socket set non-blocking).

    Returns
    -------
    tuple
        ``(words, fds)``; ``([], [])`` once the other end is closed.  The caller owns the
        descriptors (and must close those it does not keep).
    """
    flags = 0 if block else socket.MSG_DONTWAIT
    msg, ancdata, _, _ = control.recvmsg(MAX_MESSAGE, _ANCILLARY, flags)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
    return msg.decode("ascii").split(), list(fds)


def send_json(control: socket.socket, value: Any, fds: Sequence[int] = ()) -> None:
    """Send ``value`` as one JSON message, optionally with file descriptors.

    Raises
    ------
    ValueError
        If the JSON text exceeds ``MAX_JSON`` bytes or there are more than ``MAX_FDS``
        descriptors.
    OSError
        If the message cannot be sent.
    """
    data = json.dumps(value).encode("utf-8")
    if len(data) > MAX_JSON or len(fds) > MAX_FDS:
        raise ValueError(
            f"a JSON message holds at most {MAX_JSON} bytes and {MAX_FDS} descriptors"
        )
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    control.sendmsg([data], ancillary if fds else [])


def recv_json(control: socket.socket) -> tuple[Any, list[int]]:
    """Receive one JSON message: ``(value, fds)``; ``({}, [])`` once the other end is closed.

    Raises
    ------
    ValueError
        If the message is not JSON.
    """
    msg, ancdata, _, _ = control.recvmsg(MAX_JSON, _ANCILLARY)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
    if not msg:
        return {}, list(fds)
    return json.loads(msg.decode("utf-8")), list(fds)
