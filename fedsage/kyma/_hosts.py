"""Host names and addresses: which ones are this machine (loopback)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "split_host_port"]


def split_host_port(authority: str) -> tuple[str, str]:
    """``("127.0.0.1", "8080")`` from ``127.0.0.1:8080``; ``("::1", "")`` from ``[::1]``.

    The host is lower-cased; the port is '' when absent (it is not checked here).
    """
    authority = authority.strip().lower()
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    if authority.count(":") > 1:  # a bare IPv6 address
        return authority, ""
    host, _, port = authority.partition(":")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port) is this machine.

    ``localhost`` and the loopback addresses (``127.0.0.0/8``, ``::1``) are; every
    other name is not, whatever it resolves to (nothing is looked up).
    """
    host = host.strip().lower().strip("[]").rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
