"""The gateway's error model and the one funnel that renders it.

Every request-time failure is a BingoError whose class fixes the HTTP status, the
OpenAI `type`/`code` and whether a retry can help; the message says what to do.
The SDKs pick their exception class from the status alone, so the status matters most.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .redact import redact
from .sse import dumps

if TYPE_CHECKING:  # Flask is imported where a response is made: gunicorn's master
    # imports the worker class, which uses this table, and must not load Flask.
    from flask import Flask, Response
    from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class BingoError(Exception):
    """Base of every request-time failure; renders as an OpenAI error body."""

    status = 500
    type = "server_error"
    code: str | None = None
    retryable = True

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {} if self.retryable else {"x-should-retry": "false"}


class InvalidRequest(BingoError):
    status = 400
    type = "invalid_request_error"
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param)
        self.code = code


class AuthenticationFailed(BingoError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    retryable = False


class ModelNotFound(BingoError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    retryable = False


class ClientDisconnected(BingoError):
    """The HTTP client went away; nothing will read the answer (nginx's 499)."""

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"
    retryable = False


class ServerOverloaded(BingoError):
    """This process already streams BINGO_MAX_INFLIGHT answers; refused at once, retryable."""

    status = 503
    code = "server_overloaded"
    retry_after = 1

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The gateway is busy: {limit} answers are in flight in this process (BINGO_MAX_INFLIGHT); retry shortly."
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StateStoreUnavailable(BingoError):
    """The shared state (Redis at REDIS_URL) did not answer: refused rather than served
    unpaced, since pacing, cool-downs and leases live there. Retryable."""

    status = 503
    code = "state_store_unavailable"
    retry_after = 5

    def __init__(self, message: str = "The gateway's shared state (Redis, REDIS_URL) is unreachable; "
                 "requests are refused until it answers again. Check the Redis server; retry shortly.") -> None:
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class KeyRateLimited(BingoError):
    """This API key sent BINGO_KEY_RPM answer requests in the last minute. Retryable
    after Retry-After, so the SDKs' own back-off waits and retries."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, rpm: int, retry_after: int) -> None:
        super().__init__(
            f"Rate limit reached for this API key: {rpm} requests per minute (BINGO_KEY_RPM). "
            f"Retry in {retry_after} s."
        )
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(BingoError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "bad_upstream_frame"
    retryable = False


class UpstreamRejected(UpstreamError):
    """Bing refused the account, the cookie or the request itself."""

    code = "upstream_auth_failed"
    retryable = False


class SignInRequired(UpstreamRejected):
    """The identity service refused a signed-in account's refresh token (revoked,
    expired, or already rotated away): only signing in again can fix it."""


class UpstreamBlocked(UpstreamRejected):
    """The upstream refuses this region or IP address."""

    code = "upstream_region_blocked"


class CaptchaRequired(UpstreamRejected):
    status = 503
    code = "captcha_required"


class InvalidModelOutput(UpstreamError):
    """The answer failed the gateway's own check (a required tool call, JSON output),
    the corrective turn's answer too. Not in the upstream failure table: no upstream
    said anything wrong; a retry asks the model again."""

    code = "invalid_model_output"


class UpstreamThrottled(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = False

    def __init__(self, message: str, *, retry_after: int = 60, guessed: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # True when the upstream did not say for how long: the account pool then
        # rests the account for BINGO_COOLDOWN_SECONDS instead.
        self.guessed = guessed

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), "x-should-retry": "false"}


class AccountsBusy(BingoError):
    """Every Copilot account that could serve is at its pacing limits (or resting)
    and none freed up within BINGO_QUEUE_SECONDS; retry after Retry-After."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        # openai-python waits out a Retry-After of up to 60 s; past that it would retry
        # within seconds, which cannot help.
        if self.retry_after > 60:
            return {"Retry-After": str(self.retry_after), "x-should-retry": "false"}
        return {"Retry-After": str(self.retry_after)}


class AccountsNeedAttention(UpstreamRejected):
    """Every Copilot account that could serve needs the operator (Cloudflare, refused
    credentials): no retry helps until an account entry changes."""

    status = 503
    code = "accounts_need_attention"


class ServerShuttingDown(BingoError):
    """This process is stopping (SIGTERM) and the request cannot finish in time."""

    status = 503
    code = "server_shutting_down"

    def __init__(self, message: str = "The gateway is restarting and could not finish this request; retry it.") -> None:
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class UnreadableRequest(BingoError):
    """gunicorn could not read the request (request line, headers, framing); the worker
    answers for it. The message never quotes the request: its line may carry a key."""

    status = 400
    type = "invalid_request_error"
    code = "malformed_request"
    retryable = False


# Statuses gunicorn picks for a request it cannot read, with what the client should change.
_UNREADABLE = {
    400: ("malformed_request", ("The request is not valid HTTP/1.1 (its request line, headers or body framing); "
                                "fix the client or the proxy in front of the gateway.")),
    403: ("forbidden", "The request's PROXY line or forwarded headers come from an address gunicorn does not trust."),
    414: ("uri_too_long", "The request line is too long; send parameters in the JSON body, not the URL."),
    417: ("expectation_failed", "The only Expect value the gateway supports is '100-continue'."),
    431: ("request_headers_too_large", "The request headers are too many or too large; send fewer or smaller headers."),
    501: ("unsupported_transfer_encoding", ("The request's Transfer-Encoding is not supported; send the body "
                                            "with Content-Length or 'Transfer-Encoding: chunked'.")),
}


def unreadable_request(status: int) -> BingoError:
    """The error for a request gunicorn refused with `status` (any other status: an internal error)."""
    if status not in _UNREADABLE:
        return BingoError("The gateway hit an internal error; see its log.")
    error = UnreadableRequest(_UNREADABLE[status][1])
    error.status, error.code = status, _UNREADABLE[status][0]
    return error


def error_response(exc: BingoError) -> Response:
    """Render a BingoError as a JSON response with its status and retry hints."""
    from flask import Response

    return Response(dumps(exc.to_body()), status=exc.status, headers=exc.headers(), mimetype="application/json")


def _failed(exc: BingoError) -> Response:
    from flask import g

    log_failure(exc, g.get("request_id", "-"))
    return error_response(exc)


def log_failure(exc: BingoError, request_id: str, *, streamed: bool = False) -> None:
    """The one log line of a failed request: its id, the error, the status, the cause."""
    cause = exc.__cause__ or exc.__context__
    said = f"; cause: {type(cause).__name__}: {redact(str(cause))[:300]}" if cause is not None else ""
    where = " (in stream)" if streamed else ""
    level = logging.INFO if exc.status < 500 and not isinstance(exc, UpstreamError) else logging.WARNING
    log.log(level, "request %s failed%s: %s %d %s: %s%s",
            request_id, where, type(exc).__name__, exc.status, exc.code, redact(exc.message), said)


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    error = BingoError(_HTTP_MESSAGES.get(code, exc.description or exc.name))
    error.status = code
    error.type = "invalid_request_error" if code < 500 else "server_error"
    error.code = _HTTP_CODES.get(code)
    response = _failed(error)
    if code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def _unexpected(exc: Exception) -> Response:
    from flask import g

    log.exception("request %s failed: unhandled error", g.get("request_id", "-"))
    return error_response(BingoError("The gateway hit an internal error; see its log."))


_HTTP_MESSAGES = {
    404: "Unknown path. Chat is POST /v1/chat/completions; models are GET /v1/models.",
    405: "Method not allowed on this path.",
    413: "Request body too large (see BINGO_MAX_BODY_BYTES).",
    415: "Unsupported media type.",
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def register_error_handlers(app: Flask) -> None:
    """Make every failure, routing ones included, an OpenAI-shaped JSON body."""
    from werkzeug.exceptions import HTTPException

    app.register_error_handler(BingoError, _failed)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
