"""Websocket upgrades: websockets does RFC 6455, this module decides who gets in.

It checks the path and credentials (ChatHub's `sec_access_token`, Copilot's
`clientSessionId`), applies queued upgrade faults, and starts the session.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection

from .accounts import credentials
from .chathub import ChatHubSession
from .copilot import CopilotSession
from .directives import UPGRADE
from .session import Session
from .state import State

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG; whole cumulative answers would drown a
# failing test's log, so frames stay quiet unless this logger is lowered on purpose.
wire_log = logging.getLogger("bingo.sandbox.wire")
wire_log.setLevel(logging.INFO)

CHATHUB_PATH = "/sydney/ChatHub"
COPILOT_PATH = "/c/api/chat"
WEBSOCKET_PATHS = frozenset({CHATHUB_PATH, COPILOT_PATH})
HANDSHAKE_SECONDS = 10.0
CLOSE_SECONDS = 1.0  # bounds stop(): a client that ignores our close frame is cut
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_BLOCKED_PAGE = (
    "<!DOCTYPE html><html><body><p>Sorry, something went wrong.</p></body></html>"
)


def serve_websocket(sock: socket.socket, state: State) -> None:
    """Run the opening handshake on an untouched socket, then the session, until closed."""
    protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=wire_log)
    # ServerConnection only reads `server.socket_closed`, which State provides.
    conn = ServerConnection(
        sock,
        protocol,
        cast(Any, state),
        ping_interval=None,
        close_timeout=CLOSE_SECONDS,
    )
    sessions: list[Session] = []
    try:
        conn.handshake(
            lambda c, request: _admit(c, request, state),
            lambda c, request, response: _open(c, response, state, sessions),
            timeout=HANDSHAKE_SECONDS,
        )
    except Exception as exc:
        log.debug("websocket handshake failed: %s", exc)
    if sessions:
        # If the 101 never went out, the session ends at once and is accounted for.
        sessions[0].run()
    else:
        conn.close_socket()


def _open(
    conn: ServerConnection, response: Response, state: State, sessions: list[Session]
) -> None:
    """websockets' process_response hook: create the session before the 101 goes out,
    so a client that has its 101 already sees itself in `stats()["open"]`."""
    if response.status_code != 101 or conn.request is None:
        return
    path, query = _split(conn.request.path)
    if path == CHATHUB_PATH:
        token = query.get("sec_access_token")
        bound = state.registry.by_token(token) if token else None
        sessions.append(ChatHubSession(conn, state, bound))
    else:
        sessions.append(CopilotSession(conn, state))


def _admit(conn: ServerConnection, request: Request, state: State) -> Response | None:
    """websockets' process_request hook: None accepts, a Response refuses."""
    path, query = _split(request.path)
    state.record_upgrade(
        {"path": path, "query": query, "headers": dict(request.headers.raw_items())}
    )
    if path == COPILOT_PATH:  # whose anonymous session it carries, accepted or not
        state.anon.upgrade(request.headers.get("Cookie", ""))
    fault = state.faults.take(UPGRADE)
    if fault:
        return _refuse(conn, fault[0])
    if path == CHATHUB_PATH:
        token = query.get("sec_access_token")
        # parse_qsl decodes '+' as a space, like the real (ASP.NET) server: a token
        # sent without URL-encoding no longer matches and the upgrade gets 403.
        if token and state.registry.by_token(token) is None:
            return conn.respond(403, "Forbidden\n")
        if not token and not state.registry.any_legacy():
            return conn.respond(403, "Forbidden\n")
        return None
    if path == COPILOT_PATH and not query.get("clientSessionId"):
        return conn.respond(403, "Forbidden\n")  # 2025-26 clients always send it
    if path == COPILOT_PATH:
        refused = state.accounts.refusal(*credentials(request.headers.raw_items(), query))
        if refused is None:
            return None
        response = conn.respond(refused.status, refused.body.decode("utf-8"))
        for name, value in refused.headers:
            response.headers[name] = value
        return response
    return conn.respond(404, "Not Found\n")


def _refuse(conn: ServerConnection, fault: str) -> Response:
    if fault == "ws-200":  # a blocked region got an ordinary page instead of 101
        response = conn.respond(200, _BLOCKED_PAGE)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response
    status = {"ws-401": 401, "ws-403": 403}.get(fault, 500)
    return conn.respond(status, f"{fault[3:]}\n")


def _split(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
