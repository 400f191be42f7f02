"""The error model: each class fixes status, OpenAI type/code and retry hints."""

from __future__ import annotations

import pytest

from bingo.config import ConfigError
from bingo.errors import (
    AuthenticationFailed,
    BingoError,
    CaptchaRequired,
    ClientDisconnected,
    InvalidRequest,
    ModelNotFound,
    SignInRequired,
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)

NO_RETRY = {"x-should-retry": "false"}

# class, parent, status, type, code, headers
ERROR_TABLE = [
    (BingoError, Exception, 500, "server_error", None, {}),
    (InvalidRequest, BingoError, 400, "invalid_request_error", None, NO_RETRY),
    (
        AuthenticationFailed,
        BingoError,
        401,
        "invalid_request_error",
        "invalid_api_key",
        NO_RETRY,
    ),
    (
        ModelNotFound,
        BingoError,
        404,
        "invalid_request_error",
        "model_not_found",
        NO_RETRY,
    ),
    (
        ClientDisconnected,
        BingoError,
        499,
        "invalid_request_error",
        "client_closed_request",
        NO_RETRY,
    ),
    (UpstreamError, BingoError, 502, "upstream_error", "upstream_error", {}),
    (
        UpstreamUnavailable,
        UpstreamError,
        502,
        "upstream_error",
        "upstream_unavailable",
        {},
    ),
    (UpstreamTimeout, UpstreamError, 504, "upstream_error", "upstream_timeout", {}),
    (
        UpstreamProtocolError,
        UpstreamError,
        502,
        "upstream_error",
        "bad_upstream_frame",
        NO_RETRY,
    ),
    (
        UpstreamRejected,
        UpstreamError,
        502,
        "upstream_error",
        "upstream_auth_failed",
        NO_RETRY,
    ),
    (
        SignInRequired,
        UpstreamRejected,
        502,
        "upstream_error",
        "upstream_auth_failed",
        NO_RETRY,
    ),
    (
        UpstreamBlocked,
        UpstreamRejected,
        502,
        "upstream_error",
        "upstream_region_blocked",
        NO_RETRY,
    ),
    (
        CaptchaRequired,
        UpstreamRejected,
        503,
        "upstream_error",
        "captcha_required",
        NO_RETRY,
    ),
    (
        UpstreamThrottled,
        UpstreamError,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        {"Retry-After": "60", "x-should-retry": "false"},
    ),
]
ERROR_IDS = [row[0].__name__ for row in ERROR_TABLE]


@pytest.mark.parametrize(
    ("cls", "parent", "status", "type_", "code", "headers"), ERROR_TABLE, ids=ERROR_IDS
)
def test_error_class_status_type_code_and_headers(
    cls, parent, status, type_, code, headers
):
    exc = cls("Something went wrong.")

    assert issubclass(cls, parent)
    assert (exc.status, exc.type, exc.code) == (status, type_, code)
    assert exc.headers() == headers


@pytest.mark.parametrize(
    ("cls", "parent", "status", "type_", "code", "headers"), ERROR_TABLE, ids=ERROR_IDS
)
def test_error_to_body_has_exactly_the_four_openai_keys(
    cls, parent, status, type_, code, headers
):
    body = cls("Something went wrong.").to_body()

    assert body == {
        "error": {
            "message": "Something went wrong.",
            "type": type_,
            "param": None,
            "code": code,
        }
    }
    assert list(body["error"]) == ["message", "type", "param", "code"]


@pytest.mark.parametrize(
    ("cls", "parent", "status", "type_", "code", "headers"), ERROR_TABLE, ids=ERROR_IDS
)
def test_error_retry_hint_matches_retryable(cls, parent, status, type_, code, headers):
    exc = cls("x")
    assert (exc.headers().get("x-should-retry") == "false") is (not exc.retryable)


def test_error_str_is_the_message():
    assert (
        str(UpstreamTimeout("Bing did not answer within 120 s."))
        == "Bing did not answer within 120 s."
    )


def test_invalid_request_to_body_carries_param_and_code():
    exc = InvalidRequest(
        "'messages' must be a non-empty array.", param="messages", code="empty_array"
    )

    assert exc.to_body() == {
        "error": {
            "message": "'messages' must be a non-empty array.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "empty_array",
        }
    }


def test_invalid_request_code_is_per_instance():
    InvalidRequest("first", param="messages", code="empty_array")
    assert InvalidRequest("second").code is None
    assert InvalidRequest.code is None


def test_bingo_error_param_is_instance_data():
    assert BingoError("x", param="stop").to_body()["error"]["param"] == "stop"


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(5, "5"), (120, "120")],
    ids=["five-seconds", "two-minutes"],
)
def test_upstream_throttled_retry_after_header(retry_after, expected):
    exc = UpstreamThrottled("Bing is throttling this account.", retry_after=retry_after)

    assert exc.retry_after == retry_after
    assert exc.headers() == {"Retry-After": expected, "x-should-retry": "false"}


def test_config_error_is_a_value_error_outside_the_request_tree():
    assert issubclass(ConfigError, ValueError)
    assert not issubclass(ConfigError, BingoError)
