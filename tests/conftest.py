"""Shared fixtures: the local upstream on loopback, settings pointing at it, the app."""
from __future__ import annotations

import dataclasses

import pytest

from bingo import create_app
from bingo.config import Settings
from bingo.sandbox import Sandbox
from tests.redis_server import redis_server  # noqa: F401  (a session fixture: a real redis-server)

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only; a developer's proxy must not intercept them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def sandbox_server():
    with Sandbox(host="127.0.0.1", port=0, ping_interval=0.5) as server:
        yield server


@pytest.fixture()
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    """The session's local upstream, with no fault left over from another test."""
    sandbox_server.clear_faults()
    yield sandbox_server
    sandbox_server.clear_faults()


@pytest.fixture()
def settings(sandbox: Sandbox) -> Settings:
    # The seed's names go to the ChatHub here, so one test runs on both upstreams by
    # naming "Creative" or "copilot"; the default upstream has tests of its own.
    return Settings(
        upstream="chathub",
        bing_cookie="_U=test-cookie-value",
        create_url=sandbox.create_url,
        chathub_url=sandbox.chathub_url,
        copilot_url=sandbox.copilot_url,
        connect_timeout=3.0,
        idle_timeout=3.0,
        total_timeout=20.0,
        keepalive_seconds=0.5,
        log_level="DEBUG",
    )


@pytest.fixture()
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture()
def client(app):
    return app.test_client()


def with_settings(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, **changes)
