"""Where a server bound to a host can be reached, and whether other machines can reach it.

A wildcard host (``0.0.0.0``, ``::``, ``""``) binds every interface of the machine, so the
server answers on each of their addresses; a named host binds the addresses it resolves to.
Only loopback addresses (``127.0.0.0/8``, ``::1``) keep a server to this machine.
:func:`serving_urls` lists the URLs (interfaces from ``psutil``), :func:`exposed` says whether
any of them is reachable from the network.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["WILDCARDS", "exposed", "serving_urls"]

#: Hosts that bind every interface ("" and "::" take IPv6 and IPv4, "0.0.0.0" IPv4 only).
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def _families(host: str) -> tuple[int, ...]:
    return (socket.AF_INET,) if host == "0.0.0.0" else (socket.AF_INET, socket.AF_INET6)


def _addresses(host: str) -> list[tuple[str, str]]:
    """``(address, where)`` for each address the host binds; ``where`` names the interface of
    a wildcard host's address ("this machine only" for loopback, "" when not known)."""
    if host in WILDCARDS:
        import psutil  # lazy: only a server bound to every interface needs it

        found = []
        for name, entries in psutil.net_if_addrs().items():
            for entry in entries:
                if entry.family in _families(host):
                    address = entry.address.split("%")[0]
                    if not ipaddress.ip_address(address).is_link_local:  # needs a scope
                        found.append((address, name))
    else:
        try:
            infos = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        found = [(info[4][0].split("%")[0], "") for info in infos]
    found = [(a, "this machine only" if ipaddress.ip_address(a).is_loopback else where)
             for a, where in dict.fromkeys(found)]
    return sorted(found, key=lambda item: not ipaddress.ip_address(item[0]).is_loopback)


def exposed(host: str) -> bool:
    """Whether a server bound to ``host`` answers on an address other machines can reach
    (every address but loopback; a name that does not resolve counts as exposed).

    Example:
        >>> exposed("localhost"), exposed("127.0.0.1"), exposed("::1"), exposed("0.0.0.0")
        (False, False, False, True)
    """
    if host in WILDCARDS:
        return True
    found = _addresses(host)
    return not found or not all(ipaddress.ip_address(a).is_loopback for a, _ in found)


def serving_urls(host: str, port: int) -> list[tuple[str, str]]:
    """``(url, where)`` for every address a server bound to ``host`` answers on, loopback
    first (``where``: the interface, "this machine only", or "" when not known); a named host
    that resolves to nothing gives its own URL.

    Example:
        >>> serving_urls("127.0.0.1", 6006)
        [('http://127.0.0.1:6006/', 'this machine only')]
    """
    found = _addresses(host) or [(host, "")]
    return [(f"http://[{a}]:{port}/" if ":" in a else f"http://{a}:{port}/", where)
            for a, where in found]
