"""A fake Microsoft identity platform on loopback: the token endpoint (refresh-token
and device-code grants) and the device-code endpoint, for BINGO_LOGIN_URL.

Like the rest of the sandbox it is a real HTTP server driven by the real clients;
tests steer it through the attributes and methods of `IdentityState`
(`identity_state.py`: what it checks, as Azure AD does for the Copilot web app's
tokens, and what it answers). A sandboxed Copilot asks `account_of(token)` whether an
access token is good, and `family_of(token)` whose it is.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, final
from urllib.parse import parse_qsl, urlsplit

from .identity_state import IdentityState, Received, family_of

__all__ = ["IdentityServer", "IdentityState", "Received", "family_of"]

log = logging.getLogger(__name__)


@final
class IdentityServer(IdentityState):
    """The state above, served over HTTP on loopback; `url` is BINGO_LOGIN_URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="identity", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/consumers"

    def start(self) -> IdentityServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> IdentityServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _handler_for(server: IdentityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bingo-sandbox-identity"
        timeout = 10

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            path = urlsplit(self.path).path
            with server.lock:
                server.received.append(Received(path, headers, form))
            extra: dict[str, str] = {}
            fault = server.token_fault() if path.endswith("/oauth2/v2.0/token") else None
            if fault is not None:
                (status, body), extra = fault
            elif path.endswith("/oauth2/v2.0/token"):
                status, body = server.token(form, headers)
            elif path.endswith("/oauth2/v2.0/devicecode"):
                status, body = server.devicecode(form, server.base_url)
            else:
                status, body = 404, {"error": "not_found"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("identity: " + format, *args)

    return Handler
