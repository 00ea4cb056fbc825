"""Loopback only, enforced: every Python process the tests start imports this first.

The tests put this folder first on ``PYTHONPATH``, so each Python process they start (the
``git data`` CLI, the filter and remote helper git runs, mounts, moto's server) imports it
at startup, as the pytest process does through ``tests/conftest.py``.

A connect to an address that is not loopback, or a name lookup of a name other than a
loopback one, fails with ``OSError`` (as an unreachable network would) and is written to the
file named by ``GITDATA_TEST_NETLOG``, which the test's fixture reads: the test then fails,
naming what was reached for. Unix sockets and binds are untouched.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

_LOG = "GITDATA_TEST_NETLOG"
_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _loopback(host) -> bool:
    if host is None or host == "":
        return True  # a lookup of no host: the local end of a bind
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0].strip("[]").rstrip(".").lower()
    if host in _NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse(what: str, host) -> OSError:
    import traceback

    stack = "".join("    " + ln for ln in traceback.format_stack(limit=12)[:-2])
    line = f"{os.getpid()} {what} {host!r}, from:\n{stack}"
    path = os.environ.get(_LOG)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            pass
    return OSError(errno.ENETUNREACH, f"tests/netguard: {what} of {host!r} refused (loopback only)")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _check(sock, address, what: str) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise refuse(what, address[0])


def connect(self, address):
    _check(self, address, "connect")
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address, "connect")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, str(refuse("lookup", host)))
    return _getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


install()
