"""One TLS setup per process, and pooled keep-alive HTTP for the REST leg.

Loading a CA bundle costs ~20 ms of CPU under the GIL. requests re-loads it into
every new connection it opens and websocket-client builds a fresh SSLContext per
socket, so an answer over TLS paid it twice. Here the context is built once (on first
use) and handed to both libraries, and REST connections are kept alive and reused.

One session serves the process, shared by its threads: its urllib3 pool is
thread-safe, so connections are reused by whichever thread needs one next, and the
pool stays at the process's peak concurrency instead of one idle socket per thread.
What makes a shared `requests.Session` unsafe is its cookie jar: here it accepts
no cookie at all, so nothing one request's upstream sets rides on another's; each
call sends exactly the headers its caller built and reads Set-Cookie itself.
"""
from __future__ import annotations

import http.cookiejar
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_lock = threading.RLock()  # a session is built under it, and builds a context
T = TypeVar("T")
_contexts: dict[str, ssl.SSLContext] = {}
_sessions: dict[str, requests.Session] = {}
POOL_SIZE = 8  # idle connections kept per upstream host; more are made and dropped


def _once(cache: dict[str, T], key: str, build: Callable[[str], T]) -> T:
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


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """An adapter whose connections publish their socket while reading (all of them)
    and, for TLS, use the one process context."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._context = context
        super().__init__(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self._context is None:
            return super().cert_verify(conn, url, verify, cert)
        # requests would set `ca_certs` here, making urllib3 load the bundle into the
        # shared context on every new connection; the context already holds it.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuses to store any cookie in the shared session's jar."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


def session(ca_bundle: str = "") -> requests.Session:
    """The process's pooled session for upstream REST calls (thread-safe, cookie-less)."""
    return _once(_sessions, ca_bundle, _build_session)


def _build_session(ca_bundle: str) -> requests.Session:
    built = requests.Session()
    built.trust_env = False  # proxies come from Settings, read in one place
    built.cookies.set_policy(_NoCookies())
    built.mount("https://", _Adapter(client_context(ca_bundle)))
    built.mount("http://", _Adapter())
    return built
