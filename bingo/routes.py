"""HTTP surface: every POST path ending in /completions, the model list, health, CORS.

Thin views: authenticate, parse, hand over to the relay. No protocol logic here.
"""
from __future__ import annotations

import hmac
import re
import secrets
import socket
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import RequestEntityTooLarge

from . import page, relay, responses, sse, wire
from .config import Settings
from .errors import AuthenticationFailed, InvalidRequest, ModelNotFound
from .models import build_model_card, catalogue

bp = Blueprint("gateway", __name__)

_OPENAPI = Path(__file__).with_name("openapi.json")
_AZURE_DEPLOYMENT = re.compile(r"(?:^|/)deployments/([^/]+)/(?:chat/)?$")


def current_settings() -> Settings:
    return current_app.config["BINGO"]


@bp.post("/completions")
@bp.post("/<path:prefix>/completions")
def completions(prefix: str = "") -> Response:
    settings = current_settings()
    check_api_key(settings)
    body = wire.parse_body(read_body(settings))
    prefix = f"{prefix}/"
    deployment = _AZURE_DEPLOYMENT.search(prefix)
    chat = wire.parse_request(
        body,
        catalogue(settings.upstream),
        legacy=not prefix.endswith("chat/"),
        deployment=deployment.group(1) if deployment else None,
        chunk_message=settings.chunk_message,
        max_messages=settings.max_messages,
    )
    exchange = relay.Exchange(chat, settings, g.request_id)
    exchange.open(client_watch())
    if not chat.stream:
        return _json(exchange.collect())
    response = Response(exchange.stream(), mimetype="text/event-stream", headers=sse.HEADERS)
    # The generator's own cleanup runs only once it has started; this runs even if
    # the server closes the response before its first chunk (gunicorn always calls it).
    response.call_on_close(exchange.close)
    return response


@bp.get("/models")
@bp.get("/v1/models")
def list_models() -> Response:
    settings = current_settings()
    check_api_key(settings)
    return _json({"object": "list", "data": [build_model_card(m) for m in catalogue(settings.upstream).models]})


@bp.get("/models/<path:model_id>")
@bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    settings = current_settings()
    check_api_key(settings)
    model = catalogue(settings.upstream).find(model_id)
    if model is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist. GET /v1/models lists the models.")
    return _json(build_model_card(model))


@bp.get("/healthz")
@bp.get("/health")  # the name vLLM and llama.cpp clients probe
def healthz() -> Response:
    return _json({"status": "ok"})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The gateway's own API description, for client generators and contract tests."""
    return Response(_OPENAPI.read_bytes(), mimetype="application/json")


def read_body(settings: Settings) -> bytes:
    """The request body; 413 when it is over the limit, chunked bodies included.

    Werkzeug stops a chunked body at MAX_CONTENT_LENGTH without raising, which
    would hand the parser a truncated body; one more byte tells the two apart.
    """
    try:
        raw = request.get_data(cache=False)
        over = len(raw) >= settings.max_body_bytes and request.environ["wsgi.input"].read(1)
    except ParseException:  # gunicorn's reader: a chunk size or terminator that is not HTTP
        raise InvalidRequest("The request body's chunked transfer encoding is malformed.") from None
    if over:
        raise RequestEntityTooLarge()
    return raw


def check_api_key(settings: Settings) -> None:
    """Require one of BINGO_API_KEYS as a Bearer token or an Azure-style api-key."""
    if not settings.api_keys:
        return
    auth = request.headers.get("Authorization", "")
    offered = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("api-key", "")
    # Compare against every key, always, so timing says nothing about which matched.
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(offered.encode(), key.encode())
    if not matched:
        raise AuthenticationFailed(
            "Missing or incorrect API key. Send 'Authorization: Bearer <key>' with one of the keys in BINGO_API_KEYS."
        )


def _json(body: object, status: int = 200) -> Response:
    return Response(sse.dumps(body), status=status, mimetype="application/json")


class _SocketWatch:
    """Tells whether the HTTP client closed its connection, without reading its data."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def gone(self) -> bool:
        """Called when the socket is readable: EOF or a reset means the client left."""
        try:
            return self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


def client_watch() -> _SocketWatch | None:
    sock = request.environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        # A client that stops reading blocks gunicorn's sendall: time it out, so the
        # stream's close path closes the upstream (gunicorn resets it per request).
        sock.settimeout(current_settings().write_timeout)
    return _SocketWatch(sock) if isinstance(sock, socket.socket) else None


def _request_id() -> None:
    """Every request gets an id; the response's x-request-id and the log lines repeat it."""
    g.request_id = f"req_{secrets.token_hex(12)}"


def _preflight() -> Response | None:
    if request.method != "OPTIONS":
        return None
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = request.headers.get(
        "Access-Control-Request-Headers", "Authorization, Content-Type, api-key"
    )
    response.headers["Access-Control-Max-Age"] = "86400"
    return response


# What a browser client may read from a response (the SDKs read these).
_EXPOSED = "x-request-id, x-should-retry, Retry-After"


def _cors(response: Response) -> Response:
    response.headers["x-request-id"] = g.get("request_id", "")
    response.headers["Access-Control-Expose-Headers"] = _EXPOSED
    response.headers["Access-Control-Allow-Origin"] = current_settings().cors_origin
    if current_settings().cors_origin != "*":
        response.headers["Vary"] = "Origin"
    return response


def register(app: Flask) -> None:
    """Attach the gateway's routes and its CORS handling to the app."""
    app.register_blueprint(bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(responses.bp)
    app.before_request(_request_id)
    app.before_request(_preflight)
    app.after_request(_cors)
