"""Loaded by gpt4free's API server (`python -m bench --peers` puts this folder first on
its PYTHONPATH): its process may reach loopback only.

BENCH_PEERS_HOSTS="copilot.microsoft.com=127.0.0.1:PORT,...": a name resolves to that
loopback address and port (the sandbox's TLS port; the certificate names the host).
Any other name that is not loopback fails to resolve, and a connect to any address
that is not loopback is refused; every such attempt is appended to BENCH_PEERS_DENIED,
which the bench reads and reports (it must stay empty).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_MAP = {}
for _item in filter(None, os.environ.get("BENCH_PEERS_HOSTS", "").split(",")):
    _name, _, _target = _item.partition("=")
    _host, _, _port = _target.rpartition(":")
    _MAP[_name.strip().lower()] = (_host, int(_port))
_DENIED = os.environ.get("BENCH_PEERS_DENIED")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _deny(what: str) -> None:
    if _DENIED:
        with open(_DENIED, "a", encoding="utf-8") as out:
            out.write(what + "\n")


def _loopback(host: object) -> bool:
    if not isinstance(host, str):
        host = host.decode() if isinstance(host, bytes) else str(host)
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    name = (host.decode() if isinstance(host, bytes) else host or "").lower()
    if name in _MAP:
        address, mapped = _MAP[name]
        return _getaddrinfo(address, mapped, *args, **kwargs)
    if host is None or _loopback(name):
        return _getaddrinfo(host, port, *args, **kwargs)
    _deny(f"resolve {name}:{port}")
    raise socket.gaierror(socket.EAI_NONAME, f"bench peers: {name} is not loopback")


def _checked(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not _loopback(host):
            _deny(f"connect {address}")
            raise ConnectionRefusedError(f"bench peers: {address} is not loopback")


def connect(self: socket.socket, address: Any) -> None:
    _checked(self, address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    _checked(self, address)
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
