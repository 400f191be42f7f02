"""Fetch image URLs for image input without opening a way into the server's network.

Used only with BINGO_FETCH_IMAGES=1. The host name is resolved here and every
address it resolves to must be public: not loopback, private, link-local,
multicast, reserved, unspecified or otherwise non-global (IPv4 addresses inside
IPv6 ones included). The connection then goes to the checked address, so a second
lookup cannot swap in another one (DNS rebinding). Redirects are followed by hand,
at most MAX_REDIRECTS, each target checked the same way. One wall-clock deadline for
all of a request's images bounds the lookups, connects and bodies (the watchdog cuts
a reply trickled a byte at a time), and a body is read to at most the cap plus one
byte. No proxy: HTTPS_PROXY is for the upstream legs, and a proxy would resolve
names itself, past the check.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from .config import Settings
from .images import MAX_IMAGE_BYTES, Fetch, FetchFailed
from .upstream import tls
from .upstream.transport import REDIRECTS
from .upstream.watchdog import WATCHDOG

FETCH_SECONDS = 10.0  # for all of one request's image URLs, redirects included
MAX_REDIRECTS = 3
READ_BYTES = 64 * 1024
USER_AGENT = "bingo-image-fetch"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def fetcher(settings: Settings) -> Fetch | None:
    """A fetch function for one request's images, or None when BINGO_FETCH_IMAGES is off."""
    return ImageFetcher(settings) if settings.fetch_images else None


def refused(address: str, *, loopback_ok: bool = False) -> str | None:
    """Why an image may not be fetched from `address`, or None when it may."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    ip = _embedded(ip)
    if ip.is_loopback:
        return None if loopback_ok else "a loopback address"
    for flag, what in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
    ):
        if flag:
            return what
    return None if ip.is_global else "not a public address"


def _embedded(ip: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


class ImageFetcher:
    """Fetches one request's image URLs, all within one deadline."""

    def __init__(self, settings: Settings, seconds: float = FETCH_SECONDS, limit: int = MAX_IMAGE_BYTES) -> None:
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._limit = limit
        self._ca_bundle = settings.ca_bundle
        # Tests only (never read from the environment): their image server is on 127.0.0.1.
        self._loopback_ok = settings.fetch_images_from_loopback

    def __call__(self, url: str) -> bytes:
        """The body of `url` (at most the cap plus one byte); raises FetchFailed."""
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = self._get(url)
            if status not in REDIRECTS:
                if status != 200:
                    raise FetchFailed(f"it answered HTTP {status}")
                return body
            if not location:
                raise FetchFailed(f"it answered HTTP {status} without a Location")
            url = urljoin(url, location)
        raise FetchFailed(f"it redirected more than {MAX_REDIRECTS} times")

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise FetchFailed(f"it did not arrive within {self._seconds:g} s")
        return left

    def _get(self, url: str) -> tuple[int, str, bytes]:
        """One GET on a checked address: (status, Location, body)."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host:
            raise FetchFailed("it is not an http(s) URL with a host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchFailed("its port is not a number") from None
        addresses = self._addresses(host, port)
        connection = self._connection(scheme, host, port, addresses)
        guard = WATCHDOG.arm(self._deadline, lambda: connection.sock)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
            response = connection.getresponse()
            body = self._body(response) if response.status == 200 else b""
            if guard.fired:  # the cut socket may read as a short reply, not as an error
                raise TimeoutError
            return response.status, response.getheader("Location", ""), body
        except (OSError, http.client.HTTPException) as exc:
            if guard.fired or isinstance(exc, TimeoutError):
                raise FetchFailed(f"it did not arrive within {self._seconds:g} s") from None
            raise FetchFailed(f"the connection failed ({type(exc).__name__})") from None
        finally:
            guard.cancel()
            connection.close()

    def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, once every one of them passed the check."""
        addresses = _resolve(host, port, self._remaining())
        for address in addresses:
            why = refused(address, loopback_ok=self._loopback_ok)
            if why is not None:
                where = address if address == host else f"{host} ({address})"
                raise FetchFailed(f"{where} is {why}, which this gateway never fetches from")
        return addresses

    def _connection(self, scheme: str, host: str, port: int, addresses: list[str]) -> http.client.HTTPConnection:
        self._remaining()  # raises once the deadline has passed
        if scheme == "https":
            return _PinnedTLS(host, port, addresses, self._deadline, tls.client_context(self._ca_bundle))
        return _Pinned(host, port, addresses, self._deadline)

    def _body(self, response: http.client.HTTPResponse) -> bytes:
        """The body, refused as soon as it is known to be over the cap (declared or read)."""
        declared = response.getheader("Content-Length", "")
        body = bytearray()
        while not (declared.isdigit() and int(declared) > self._limit) and len(body) <= self._limit:
            piece = response.read(min(READ_BYTES, self._limit + 1 - len(body)))
            if not piece:
                return bytes(body)
            body += piece
        raise FetchFailed(f"it is larger than {self._limit // (1024 * 1024)} MiB, the most one image may be", code="image_too_large")


def _resolve(host: str, port: int, seconds: float) -> list[str]:
    """Every address of `host`, looked up in a helper thread so the deadline holds."""
    found: list[str] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name="bingo-image-lookup", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise FetchFailed(f"{host} did not resolve within the time allowed")
    if failed or not found:
        raise FetchFailed(f"{host} does not resolve")
    return found


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to a host name, made to the first of its checked addresses that answers.

    Each connect and read waits at most until the deadline; the watchdog cuts the
    socket there too, for a reply trickled a byte at a time.
    """

    def __init__(self, host: str, port: int, addresses: list[str], deadline: float) -> None:
        super().__init__(host, port, timeout=max(0.001, deadline - time.monotonic()))
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        failed: OSError = TimeoutError("no time left to connect")
        for address in dict.fromkeys(self._addresses):  # getaddrinfo repeats some
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.sock = socket.create_connection((address, self.port), left)
                return
            except OSError as exc:
                failed = exc
        raise failed


class _PinnedTLS(_Pinned):
    """The same over TLS; the certificate is checked against the host name."""

    default_port = 443

    def __init__(self, host: str, port: int, addresses: list[str], deadline: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, addresses, deadline)
        self._context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)
