"""Plain HTTP on the sandbox port: create endpoints of both protocols, and /sandbox/*.

One request per connection (we answer `Connection: close`). Every request except
the /sandbox/* control endpoints is recorded for `Sandbox.requests` (method,
path, query, headers, and the body: the bytes of an image, else decoded JSON, else
text, else None).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import account_create, attachments, create
from .create import Reply, json_reply
from .directives import parse_spec
from .state import State

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024  # an image upload may be 10 MiB
CONTROL_PREFIX = "/sandbox/"

Route = Callable[["SandboxHandler"], Reply]


class SandboxHandler(BaseHTTPRequestHandler):
    """Serves one request; `state` is set on a per-sandbox subclass by `handler_for`."""

    state: State
    protocol_version = "HTTP/1.1"
    server_version = "bingo-sandbox"
    timeout = 10  # seconds to read the request before giving up on the client

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self.route_path = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.body = self._read_body()
        if not self.route_path.startswith(CONTROL_PREFIX):
            self.state.record_request(
                {
                    "method": self.command,
                    "path": self.route_path,
                    "query": self.query,
                    "headers": dict(self.headers.items()),
                    "body": _decoded(self.body, self.headers.get("Content-Type", "")),
                }
            )
        methods = _ROUTES.get(self.route_path, {})
        route = methods.get(self.command)
        if route is not None:
            reply = route(self)
        elif methods:
            reply = json_reply({"error": "method not allowed"}, status=405)
        else:
            reply = json_reply({"error": "not found"}, status=404)
        self._write(reply)

    def _read_body(self) -> bytes:
        """The request body, up to MAX_BODY_BYTES; a bad Content-Length reads nothing."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return b""
        return self.rfile.read(min(length, MAX_BODY_BYTES)) if length > 0 else b""

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)
        self.close_connection = True

    @property
    def cookie(self) -> str:
        return self.headers.get("Cookie", "")

    def log_message(self, format: str, *args: object) -> None:  # stdlib's signature
        log.debug("%s " + format, self.address_string(), *args)


def _decoded(body: bytes, content_type: str) -> Any:
    """A request body for the record: an image's bytes, JSON if it parses, else text, else None."""
    if not body:
        return None
    if content_type.lower().startswith("image/"):
        return body
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def handler_for(state: State) -> type[SandboxHandler]:
    """A handler class bound to one sandbox's state (the stdlib wants a class)."""
    return type("BoundSandboxHandler", (SandboxHandler,), {"state": state})


def _queue_faults(handler: SandboxHandler) -> Reply:
    """POST /sandbox/faults {"faults": [...]}: all are checked before any is queued."""
    try:
        specs = json.loads(handler.body or b"{}").get("faults", [])
        if not isinstance(specs, list):
            raise ValueError("faults must be a list")
        for spec in specs:
            parse_spec(str(spec))
    except (ValueError, AttributeError) as exc:
        return json_reply({"error": str(exc)}, status=400)
    for spec in specs:
        handler.state.faults.put(str(spec))
    return json_reply({"queued": handler.state.faults.pending()})


def _clear_faults(handler: SandboxHandler) -> Reply:
    handler.state.faults.clear()
    return json_reply({"queued": []})


_ROUTES: dict[str, dict[str, Route]] = {
    "/turing/conversation/create": {
        "GET": lambda h: create.chathub_create(h.state, h.cookie)
    },
    "/edgesvc/turing/conversation/create": {
        "GET": lambda h: create.chathub_create(h.state, h.cookie)
    },
    "/c/api/conversations": {
        "POST": lambda h: attachments.started(
            h.state.attachments, dict(h.headers.items()), account_create.copilot_create(h.state, h.headers.items(), start=False)
        )
    },
    "/c/api/start": {
        "POST": lambda h: attachments.started(
            h.state.attachments, dict(h.headers.items()), account_create.copilot_create(h.state, h.headers.items(), start=True)
        )
    },
    "/c/api/attachments": {
        "POST": lambda h: attachments.upload(h.state, dict(h.headers.items()), h.body)
    },
    "/c/api/user": {"GET": lambda h: create.copilot_user()},
    "/sandbox/faults": {"POST": _queue_faults, "DELETE": _clear_faults},
    "/sandbox/stats": {"GET": lambda h: json_reply(h.state.stats())},
    "/sandbox/accounts": {"POST": lambda h: account_create.queue_rules(h.state, h.body)},
}
