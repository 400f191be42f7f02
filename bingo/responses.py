"""The OpenAI Responses API (`POST /v1/responses` and every path ending in `/responses`).

Thin views, as in routes.py: the same keys, CORS and error bodies as chat. The
request becomes chat's messages (instructions, then the stored conversation a
`previous_response_id` continues, then this input) and goes upstream on chat's path.
Responses are kept in the app's ResponseStore unless `store` is false.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g
from flask.blueprints import BlueprintSetupState

from . import admin, routes, sse, wire
from .errors import BingoError
from .models import catalogue
from .responses_run import ResponseRun
from .responses_wire import history_messages, messages_for, parse_request
from .state import EXTENSION as STATE
from .store import ResponseStore, make_store

bp = Blueprint("responses", __name__)

_STORE = "bingo.responses"


class ResponseNotFound(BingoError):
    status = 404
    type = "invalid_request_error"
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, code: str = "not_found") -> None:
        super().__init__(message, param=param)
        self.code = code


@bp.record_once
def _attach_store(state: BlueprintSetupState) -> None:
    state.app.extensions[_STORE] = make_store(state.app.extensions[STATE])


def response_store() -> ResponseStore:
    return current_app.extensions[_STORE]


@bp.post("/responses")
@bp.post("/<path:prefix>/responses")
def create_response(prefix: str = "") -> Response:
    settings = routes.current_settings()
    routes.check_api_key(settings)
    request = parse_request(wire.parse_body(routes.read_body(settings)), catalogue(settings.upstream))
    history: tuple[wire.Message, ...] = ()
    if request.previous_response_id:
        record = response_store().get(request.previous_response_id)
        if record is None:
            raise ResponseNotFound(
                f"Previous response with id '{request.previous_response_id}' not found.",
                param="previous_response_id", code="previous_response_not_found",
            )
        history = history_messages(record["history"])
    run = ResponseRun(request, messages_for(request, history), history, settings, g.request_id, response_store())
    run.open(routes.client_watch(), admin.current_pool())
    if not request.stream:
        return _json(run.collect())
    response = Response(run.stream(), mimetype="text/event-stream", headers=sse.HEADERS)
    response.call_on_close(run.close)  # runs even if the body never starts
    return response


@bp.get("/responses/<response_id>")
@bp.get("/v1/responses/<response_id>")
def get_response(response_id: str) -> Response:
    routes.check_api_key(routes.current_settings())
    record = response_store().get(response_id)
    if record is None:
        raise _not_found(response_id)
    return _json(record["response"])


@bp.delete("/responses/<response_id>")
@bp.delete("/v1/responses/<response_id>")
def delete_response(response_id: str) -> Response:
    routes.check_api_key(routes.current_settings())
    if not response_store().delete(response_id):
        raise _not_found(response_id)
    return _json({"id": response_id, "object": "response.deleted", "deleted": True})


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")


def _json(body: object) -> Response:
    return Response(sse.dumps(body), mimetype="application/json")
