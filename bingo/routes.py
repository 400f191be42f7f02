"""HTTP surface: every POST path ending in /completions, the model list, health, CORS.

Thin views: authenticate, parse, hand over to the relay. No protocol logic here.

Admission lives in app hooks, not in the views, so /responses (responses.py) gets it
too. A `before_request` takes a slot for every POST path ending in /completions or
/responses, raising ServerOverloaded (503) at once when none is free, before the body
is read. A stream keeps its slot until its body ends: `after_request` wraps the body
in a generator whose `finally` gives it back (last byte, in-band error, or gunicorn
closing it when the client goes), with the response's `call_on_close` as a backup for
a body that never starts. Anything else (one-shot answers, errors) is complete when
the view returns and gives its slot back in `teardown_request`. Both views call
client_watch() right before opening the upstream turn: a client that left while its
request waited for a thread gets 499, and nothing opens upstream (watch.py tells a
client that left from one that only half-closed).
"""
from __future__ import annotations

import hmac
import re
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected as BodyEndedEarly
from werkzeug.exceptions import RequestEntityTooLarge

from . import admin, page, ratelimit, relay, responses, sse, wire
from .admission import Admission, Slot
from .config import Settings
from .cors import cors_headers, new_request_id
from .errors import (
    AuthenticationFailed,
    ClientDisconnected,
    InvalidRequest,
    ModelNotFound,
)
from .models import build_model_card, catalogue
from .state import EXTENSION as STATE
from .watch import SocketWatch

bp = Blueprint("gateway", __name__)

_OPENAPI = Path(__file__).with_name("openapi.json")
_AZURE_DEPLOYMENT = re.compile(r"(?:^|/)deployments/([^/]+)/(?:chat/)?$")
_ADMISSION = "bingo.admission"
_ANSWER_PATHS = ("/completions", "/responses")  # POSTs that hold a thread while they answer


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
    exchange.open(client_watch(), admin.current_pool())
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
    except BodyEndedEarly:  # only gunicorn's own TLS reads the body here: the client stalled (BINGO_WRITE_TIMEOUT) or left
        raise ClientDisconnected("The client stopped sending its request body.") from None
    if over:
        raise RequestEntityTooLarge()
    return raw


def presented_key() -> str:
    """The API key the client sent: a Bearer token or an Azure-style api-key ("" if none)."""
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("api-key", "")


def check_api_key(settings: Settings) -> None:
    """Require one of BINGO_API_KEYS as a Bearer token or an Azure-style api-key.

    Checked once per request: with BINGO_KEY_RPM, the rate limit checks it before the view.
    """
    if not settings.api_keys or g.get("key_checked"):
        return
    offered = presented_key()
    # Compare against every key, always, so timing says nothing about which matched.
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(offered.encode(), key.encode())
    if not matched:
        raise AuthenticationFailed(
            "Missing or incorrect API key. Send 'Authorization: Bearer <key>' with one of the keys in BINGO_API_KEYS."
        )
    g.key_checked = True


def _json(body: object, status: int = 200) -> Response:
    return Response(sse.dumps(body), status=status, mimetype="application/json")


def client_watch() -> SocketWatch | None:
    """The client's socket, for the upstream turn to watch; called right before it opens.

    Raises ClientDisconnected when the client already left (its request waited for a
    thread, or it gave up while the body was read): no upstream turn opens for nobody.
    A client that only shut down its sending side is still there (watch.py).
    """
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return None
    watch = SocketWatch(sock, http11=request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1")
    if watch.left():
        raise ClientDisconnected("The client closed the connection before the answer started.")
    g.client_watch = watch
    return watch


def _answer_starts(response: Response) -> Response:
    """From here the answer's own writes tell a closed client from a half-closed one."""
    watch = g.pop("client_watch", None)
    if watch is not None:
        watch.answer_started()
    return response


def _limit_key() -> None:
    """BINGO_KEY_RPM: an answer request over its key's budget gets 429 before anything
    else is spent on it (a wrong key still gets its 401 first)."""
    settings = current_settings()
    if settings.key_rpm and request.method == "POST" and request.path.rstrip("/").endswith(_ANSWER_PATHS):
        check_api_key(settings)
        ratelimit.check(current_app.extensions[STATE], presented_key(), settings.key_rpm)


def _admit() -> None:
    """Take an answer slot for a completion; raises ServerOverloaded when none is free."""
    if request.method == "POST" and request.path.rstrip("/").endswith(_ANSWER_PATHS):
        g.slot = current_app.extensions[_ADMISSION].admit()


def _hand_over_slot(response: Response) -> Response:
    """A stream's slot goes with its body; other responses leave theirs to teardown."""
    slot = g.get("slot")
    if slot is not None and response.is_streamed:
        g.pop("slot")
        response.response = _releasing(response.response, slot)
        response.call_on_close(slot.release)
    return response


def _releasing(body: Iterable[Any], slot: Slot) -> Iterator[Any]:
    try:
        yield from body
    finally:
        slot.release()


def _drop_slot(exc: BaseException | None) -> None:
    slot = g.pop("slot", None)
    if slot is not None:
        slot.release()


def _request_id() -> None:
    """Every request gets an id; the response's x-request-id and the log lines repeat it."""
    g.request_id = new_request_id()


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


def _cors(response: Response) -> Response:
    response.headers["x-request-id"] = g.get("request_id", "")
    response.headers.update(cors_headers(current_settings().cors_origin))
    return response


def register(app: Flask) -> None:
    """Attach the gateway's routes and its CORS handling to the app."""
    app.register_blueprint(bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(responses.bp)
    admin.register(app)
    app.extensions[_ADMISSION] = Admission(app.config["BINGO"].max_inflight)
    app.before_request(_request_id)
    app.before_request(_preflight)
    app.before_request(_limit_key)
    app.before_request(_admit)
    app.after_request(_cors)
    app.after_request(_hand_over_slot)
    app.after_request(_answer_starts)
    app.teardown_request(_drop_slot)
