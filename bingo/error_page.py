"""gunicorn's error pages as bingo's: OpenAI-shaped JSON with the gateway's CORS headers.

gunicorn answers a request it cannot parse (a bad request line, a URI or headers over
its limits, an unknown transfer coding) with an HTML page of its own, before any app
code runs. The worker (worker.py) lets gunicorn pick the status and write its redacted
log lines into a PageCapture, then writes this page instead. No Flask objects here:
the headers come from cors.py, as on every other response.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

from .cors import cors_headers, new_request_id
from .errors import unreadable_request
from .sse import dumps


class PageCapture:
    """Stands in for the client socket while gunicorn writes its HTML page, keeping its status."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._written = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn's write_nonblock then writes straight to sendall

    def sendall(self, data: bytes) -> None:
        self._written += data

    def status(self) -> int:
        """The status gunicorn chose (its reason phrase is not always the standard one: 501 "Bad Request")."""
        code = (self._written.split(b" ", 2) + [b""])[1]  # b"HTTP/1.1 400 Bad Request..."
        return int(code) if code.isdigit() and 100 <= int(code) <= 599 else 500

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def build_error_page(status: int, cors_origin: str) -> bytes:
    """The whole response for a request gunicorn refused with `status`; it never quotes the request."""
    error = unreadable_request(status)
    body = dumps(error.to_body()).encode()
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        **cors_headers(cors_origin),
        **error.headers(),
        "x-request-id": new_request_id(),
        "Content-Length": str(len(body)),
    }
    head = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + body
