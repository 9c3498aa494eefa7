"""The test suite's network fence: only loopback (127.0.0.0/8, ::1, ``localhost``) may be reached.

``install()`` patches, in the pytest process, ``socket.getaddrinfo`` (name resolution), ``socket.socket.connect``
/ ``connect_ex`` (TCP and UDP connects) and ``socket.socket.sendto`` so that anything else fails at once with
``NetworkBlocked`` (an ``OSError``, as a real unreachable network gives, so the code under test takes its
ordinary error path) whose message says it was the fence. Unix-domain sockets (PostgreSQL's, for example)
are not touched.

``SUBPROCESS_ENV`` points HTTP(S) proxies at a closed loopback port and exempts loopback through
``NO_PROXY``: child processes that honour the proxy variables (nuseal's httpx clients, .NET, Mono's NuGet.exe,
curl) then fail fast on any other host. ``install()`` puts it into ``os.environ`` so every subprocess a
test starts inherits it. Installing the oracle (``support.oracle``'s set-up) is the one step allowed to
download, and runs with these variables removed (``unfenced_env``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEAD_PROXY", "SUBPROCESS_ENV", "LookupBlocked", "NetworkBlocked", "install", "installed", "is_loopback",
    "unfenced_env",
]

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there, so a connect is refused at once
LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost", "ip6-loopback")
SUBPROCESS_ENV: Mapping[str, str] = {
    name: value
    for proxy in ("http_proxy", "https_proxy", "all_proxy")
    for name, value in ((proxy, DEAD_PROXY), (proxy.upper(), DEAD_PROXY))
} | {"no_proxy": (_NO_PROXY := "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.0/8,localhost,::1"), "NO_PROXY": _NO_PROXY}
# httpx matches NO_PROXY hosts exactly (no CIDR): the other loopback addresses the tests use are listed by name;
# curl and .NET also read the CIDR form.


def _message(what: str) -> str:
    return (f"network blocked by the test suite (tests/support/network.py): {what}; only 127.0.0.0/8, ::1 and "
            "localhost may be reached in tests")


class NetworkBlocked(ConnectionRefusedError):
    """A test tried to connect (or send a datagram) to a host other than loopback."""

    def __init__(self, what: str) -> None:
        super().__init__(_message(what))


class LookupBlocked(socket.gaierror):
    """A test tried to resolve a name other than ``localhost`` (a ``gaierror``, as a failed lookup is)."""

    def __init__(self, what: str) -> None:
        super().__init__(socket.EAI_NONAME, _message(what))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal, possibly IPv4-mapped or bracketed, or a name) is loopback."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


_real: dict[str, Callable[..., Any]] = {}


def _checked_address(sock: socket.socket, address: Any, what: str) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if not is_loopback(host):
            raise NetworkBlocked(f"{what} {host}:{address[1]}")


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None:
        text = host.decode() if isinstance(host, bytes) else str(host)
        if not is_loopback(text):
            raise LookupBlocked(f"name lookup of {text!r}")
    return _real["getaddrinfo"](host, port, *args, **kwargs)


def _connect(self: socket.socket, address: Any) -> None:
    _checked_address(self, address, "connect to")
    _real["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _checked_address(self, address, "connect to")
    result: int = _real["connect_ex"](self, address)
    return result


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _checked_address(self, args[-1], "datagram to")
    result: int = _real["sendto"](self, data, *args)
    return result


def install() -> None:
    """Put the fence up in this process (idempotent) and export ``SUBPROCESS_ENV`` to its children."""
    if not _real:
        _real.update(getaddrinfo=socket.getaddrinfo, connect=socket.socket.connect,
                     connect_ex=socket.socket.connect_ex, sendto=socket.socket.sendto)
        socket.getaddrinfo = _getaddrinfo
        socket.socket.connect = _connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
    os.environ.update(SUBPROCESS_ENV)


def installed() -> bool:
    return bool(_real)


def unfenced_env() -> dict[str, str]:
    """An environment for a child process that may download (the oracle's one-time set-up): this process's
    environment without the proxy variables of ``SUBPROCESS_ENV``."""
    return {k: v for k, v in os.environ.items() if k not in SUBPROCESS_ENV}
