"""BINGO_KEY_RPM: answer requests per API key per minute, through the Flask test
client, on the in-process store and on a real Redis shared by two apps (processes)."""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bingo import create_app
from bingo.config import ConfigError, Settings
from bingo.errors import StateStoreUnavailable
from bingo.sandbox import Sandbox
from tests.redis_server import BINARY, MISSING, RedisServer, running_redis
from tests.test_e2e import API_KEY, Gateway

KEYS = frozenset({"sk-alpha", "sk-beta"})
AppFactory = Callable[..., FlaskClient]


@pytest.fixture(params=["memory", "redis"])
def make_client(request: pytest.FixtureRequest, settings: Settings) -> Iterator[AppFactory]:
    """Test clients of apps with BINGO_KEY_RPM; on Redis they share one server, as the
    processes of a deployment do."""
    redis_url = ""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.client().flushall()
        redis_url = server.url

    def make(**changes: object) -> FlaskClient:
        options = {"api_keys": KEYS, "key_rpm": 2, "redis_url": redis_url, **changes}
        return create_app(dataclasses.replace(settings, **options)).test_client()  # type: ignore[arg-type]

    yield make


def chat(client: FlaskClient, key: str = "sk-alpha", path: str = "/v1/chat/completions") -> TestResponse:
    body = {"model": "copilot", "messages": [{"role": "user", "content": "Hello"}]}
    if path.endswith("/responses"):
        body = {"model": "copilot", "input": "Hello"}
    return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def test_key_over_its_rpm_gets_429_with_retry_after(make_client: AppFactory, sandbox: Sandbox) -> None:
    client = make_client()
    assert [chat(client).status_code for _ in range(2)] == [200, 200]
    creates = sandbox.stats()["creates"]
    refused = chat(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert "x-should-retry" not in refused.headers
    assert refused.get_json() == {"error": {
        "message": "Rate limit reached for this API key: 2 requests per minute (BINGO_KEY_RPM). Retry in 60 s.",
        "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}}
    assert sandbox.stats()["creates"] == creates  # refused before anything went upstream


def test_each_key_has_its_own_budget(make_client: AppFactory) -> None:
    client = make_client(key_rpm=1)
    assert chat(client, "sk-alpha").status_code == 200
    assert chat(client, "sk-beta").status_code == 200
    assert chat(client, "sk-alpha").status_code == 429
    assert chat(client, "sk-beta").status_code == 429


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/responses", "/openai/deployments/gpt/chat/completions"],
                         ids=["legacy", "responses", "azure"])
def test_every_answer_path_counts(make_client: AppFactory, path: str) -> None:
    client = make_client(key_rpm=1)
    assert chat(client, path=path).status_code == 200
    assert chat(client).status_code == 429


def test_reads_and_wrong_keys_are_not_counted(make_client: AppFactory) -> None:
    client = make_client(key_rpm=1)
    headers = {"Authorization": "Bearer sk-alpha"}
    assert [client.get("/v1/models", headers=headers).status_code for _ in range(3)] == [200] * 3
    assert [chat(client, "sk-wrong").status_code for _ in range(3)] == [401] * 3
    assert chat(client).status_code == 200


def test_keyless_clients_share_one_budget_when_the_api_is_open(make_client: AppFactory) -> None:
    client = make_client(api_keys=frozenset(), key_rpm=1)
    assert client.post("/v1/chat/completions", json={"model": "copilot", "messages": [
        {"role": "user", "content": "Hi"}]}).status_code == 200
    assert client.post("/v1/chat/completions", json={"model": "copilot", "messages": [
        {"role": "user", "content": "Hi"}]}).status_code == 429
    assert chat(client, "any-other-key").status_code == 200


def test_off_by_default(make_client: AppFactory) -> None:
    client = make_client(key_rpm=0)
    assert [chat(client).status_code for _ in range(4)] == [200] * 4


def test_redis_budget_is_shared_by_processes(redis_server: RedisServer, settings: Settings) -> None:
    redis_server.client().flushall()
    shared = dataclasses.replace(settings, api_keys=KEYS, key_rpm=2, redis_url=redis_server.url)
    first, second = create_app(shared).test_client(), create_app(shared).test_client()
    assert (chat(first).status_code, chat(second).status_code) == (200, 200)
    assert (chat(first).status_code, chat(second).status_code) == (429, 429)


def test_redis_counts_a_key_under_its_sha256(redis_server: RedisServer, settings: Settings) -> None:
    redis_server.client().flushall()
    client = create_app(dataclasses.replace(settings, api_keys=KEYS, key_rpm=2,
                                            redis_url=redis_server.url)).test_client()
    chat(client, "sk-alpha")
    digest = hashlib.sha256(b"sk-alpha").hexdigest()
    assert redis_server.client().keys("bingo:key:*") == [f"bingo:key:{digest}:hits"]


def test_redis_down_is_503_never_unlimited(settings: Settings) -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis() as server:
        client = create_app(dataclasses.replace(settings, api_keys=KEYS, key_rpm=5,
                                                redis_url=server.url)).test_client()
        assert chat(client).status_code == 200
        server.stop()
        refused = chat(client)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "5")
        assert refused.get_json()["error"] == {"message": StateStoreUnavailable().message, "type": "server_error",
                                               "param": None, "code": "state_store_unavailable"}
        server.start()
        assert chat(client).status_code == 200


@pytest.mark.parametrize(("raw", "rpm"), [("", 0), ("0", 0), ("30", 30)], ids=["unset", "zero", "thirty"])
def test_key_rpm_setting(raw: str, rpm: int) -> None:
    assert Settings.from_env({"BINGO_KEY_RPM": raw}).key_rpm == rpm


@pytest.mark.parametrize("raw", ["-1", "ten", "1.5"])
def test_key_rpm_bad_values_stop_start_up(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"BINGO_KEY_RPM must be a positive whole number, not '{raw}'"):
        Settings.from_env({"BINGO_KEY_RPM": raw})


@pytest.mark.e2e
def test_redis_budget_holds_across_two_gunicorn_workers(redis_server: RedisServer, sandbox: Sandbox,
                                                        tmp_path: Path) -> None:
    """The Procfile command with WEB_CONCURRENCY=2: the access log names the worker
    (its pid) that answered each request. Without REDIS_URL each worker would count
    its own BINGO_KEY_RPM, so two workers would let twice the budget through."""
    redis_server.client().flushall()
    gateway = Gateway(sandbox, tmp_path / "gunicorn.log", extra_args="--access-logformat '%(p)s %(U)s %(s)s'",
                      WEB_CONCURRENCY="2", REDIS_URL=redis_server.url, BINGO_KEY_RPM="5")
    try:
        statuses, workers = [], set()
        with ThreadPoolExecutor(2) as pool:
            for _ in range(40):  # bounded: pairs of new connections until both workers have answered
                # Two connections at once: which worker accepts is the kernel's choice, and
                # one at a time a quiet machine may give them all to the same worker.
                statuses += pool.map(_post_on_a_new_connection, [gateway.port] * 2)
                workers = set(re.findall(r"<(\d+)> /v1/chat/completions", gateway.log()))
                if len(statuses) >= 12 and len(workers) == 2:
                    break
    finally:
        gateway.stop()
    assert len(workers) == 2
    assert sorted(statuses) == [200] * 5 + [429] * (len(statuses) - 5)


def _post_on_a_new_connection(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/v1/chat/completions",
                           json.dumps({"model": "Creative", "messages": [{"role": "user", "content": "hi"}]}),
                           {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
                            "Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
