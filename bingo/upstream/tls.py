"""One TLS setup per process, and pooled keep-alive HTTP for the REST leg.

Loading a CA bundle costs ~20 ms of CPU under the GIL. requests re-loads it into
every new connection it opens and websocket-client builds a fresh SSLContext per
socket, so an answer over TLS paid it twice. Here the context is built once (on first
use) and handed to every connection, and REST connections are kept alive and reused.

The REST leg is one process-wide urllib3 PoolManager per CA file and proxy, shared by
the threads: its pools are thread-safe, so connections are reused by whichever thread
needs one next, and a pool stays at the process's peak concurrency instead of one idle
socket per thread. It has no cookie jar, so nothing one request's upstream sets rides
on another's; each call sends exactly the headers its caller built and reads
Set-Cookie itself. requests' Session on top of the same pool cost three times the CPU
of the call itself (merging settings, runtime Protocol checks, a cookie jar per reply)
for nothing bingo uses, on the path of every answer.
"""
from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import make_headers

from . import watchdog

_lock = threading.RLock()  # a pool manager is built under it, and builds a context
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
_contexts: dict[str, ssl.SSLContext] = {}
_managers: dict[tuple[str, str], urllib3.PoolManager] = {}
POOL_SIZE = 8  # idle connections kept per upstream host; more are made and dropped


def _once(cache: dict[K, T], key: K, build: Callable[[K], T]) -> T:
    """cache[key], built on first use by exactly one thread."""
    found = cache.get(key)
    if found is None:
        with _lock:
            found = cache.get(key)
            if found is None:
                found = cache[key] = build(key)
    return found


def client_context(ca_bundle: str = "") -> ssl.SSLContext:
    """The process's client SSLContext for this CA file ("" = certifi's bundle)."""
    return _once(_contexts, ca_bundle, _build_context)


def _build_context(ca_bundle: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle or _certifi_bundle())
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _certifi_bundle() -> str | None:
    """requests' default bundle, so both legs trust the same roots as before."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on certifi
        return None
    return certifi.where()


# The REST socket each thread is reading a reply from, for the watchdog to cut: a
# per-read timeout cannot bound a reply trickled a byte at a time.
_reading: dict[int, socket.socket] = {}


def reading_socket(thread_id: int) -> socket.socket | None:
    """The socket `thread_id` is reading a REST reply from, if any."""
    return _reading.get(thread_id)


def done_reading() -> None:
    """This thread reads no REST reply any more: the watchdog finds no socket to cut.

    Taken under the watchdog's lock, so a cut in progress ends first; urllib3 calls it
    (`_put_conn`) before a connection goes back to its pool, where a cut could hit
    another thread's request. A connection cut before is dropped when next taken.
    """
    with watchdog.CUTTING:
        _reading.pop(threading.get_ident(), None)


class _Published:
    """A connection that publishes its socket while its reply is read."""

    sock: socket.socket

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _reading[threading.get_ident()] = self.sock
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Published, HTTPConnection):
    pass


class _HTTPSConnection(_Published, HTTPSConnection):
    pass


class _Unpublishing:
    """A pool that unpublishes the thread's socket before taking a connection back."""

    def _put_conn(self, conn: Any) -> None:
        done_reading()
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_Unpublishing, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_Unpublishing, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def proxy_credentials(parts: SplitResult) -> str:
    """"user:password" from a proxy URL's user info, percent-decoded, for Basic auth."""
    return f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"


def pool(ca_bundle: str = "", proxy: str = "") -> urllib3.PoolManager:
    """The process's pooled HTTP client for this CA file and proxy ("" = direct).

    Thread-safe and cookie-less; TLS through the one process context, never loading
    the bundle again; through `proxy`, https:// targets are CONNECT tunnels and
    http:// ones absolute-URI requests, with Basic credentials from the proxy's URL.
    """
    return _once(_managers, (ca_bundle, proxy), _build_pool)


def _build_pool(key: tuple[str, str]) -> urllib3.PoolManager:
    ca_bundle, proxy = key
    options: dict[str, Any] = {
        "num_pools": 4, "maxsize": POOL_SIZE, "retries": False,
        "ssl_context": client_context(ca_bundle), "cert_reqs": "CERT_REQUIRED",
    }
    manager: urllib3.PoolManager
    if proxy:
        parts = urlsplit(proxy)
        headers = None
        if parts.username:
            headers = make_headers(proxy_basic_auth=proxy_credentials(parts))
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        bare = urlunsplit((parts.scheme, netloc, "", "", ""))
        manager = urllib3.ProxyManager(bare, proxy_headers=headers, **options)
    else:
        manager = urllib3.PoolManager(**options)
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


def close_idle() -> None:
    """Close every idle pooled connection (the pools stay usable): tests, and tools that
    need the upstream's sockets gone."""
    with _lock:
        for manager in _managers.values():
            manager.clear()
