"""Shared fixtures: the local upstream on loopback, settings pointing at it, the app."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import statistics
import sys
from collections.abc import Iterator

import pytest

from bingo import create_app
from bingo.config import Settings
from bingo.sandbox import Sandbox
from tests.redis_server import redis_server  # noqa: F401  (a session fixture: a real redis-server)

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only; a developer's proxy must not intercept them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextlib.contextmanager
def _bingo_log_level_kept():
    logger = logging.getLogger("bingo")
    level = logger.level
    try:
        yield
    finally:
        logger.setLevel(level)


@pytest.fixture(autouse=True, scope="module")
def bingo_log_level_per_module():
    """Each test file starts with the `bingo` logger as the session began with it.

    create_app() sets that logger's level from BINGO_LOG_LEVEL (once per process in
    production); in a test session it would leak into every later test, so a test
    that checks which lines a module logs (test_accounts' roster tests) would pass or
    fail by which file ran before it. This one undoes a module-scoped app's setting.
    """
    with _bingo_log_level_kept():
        yield


@pytest.fixture(autouse=True)
def bingo_log_level():
    """Likewise for an app a test makes for itself."""
    with _bingo_log_level_kept():
        yield


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
def upstream(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox once idle (no socket left from another test), with no account rule
    (throttle, CAPTCHA, 401) left over either: what the account-pool tests start from."""
    sandbox.clear_account_rules()
    assert sandbox.wait_idle(5.0)
    yield sandbox
    sandbox.clear_account_rules()


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


def pytest_terminal_summary(terminalreporter) -> None:
    """The figures the slow tests measured (a module's FIGURES dict), for the report:
    shown after the run rather than by a test that could not fail."""
    for name, module in sorted(sys.modules.items()):
        is_test = name.rpartition(".")[2].startswith("test_") and getattr(module, "__file__", "").startswith(HERE)
        figures = getattr(module, "FIGURES", None) if is_test else None
        if not isinstance(figures, dict) or not figures:
            continue
        terminalreporter.write_sep("-", f"figures measured by {name}")
        for what, figure in figures.items():
            if isinstance(figure, list) and figure:
                figure = (f"n={len(figure)} median={statistics.median(figure) * 1000:.1f} ms "
                          f"max={max(figure) * 1000:.1f} ms")
            terminalreporter.write_line(f"{what}: {figure}")
