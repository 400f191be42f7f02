"""End to end: the Procfile's gunicorn command on loopback, driven by real clients.

The `openai` Python package, curl, the `openai` npm package and raw sockets talk to
gunicorn, which talks to the local upstream; nothing is mocked.
"""
from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from bench.services import free_port, wait_for_port
from tests.helpers import BOTH_UPSTREAMS, content_of, expected_content, read_sse

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-e2e-SECRET-KEY-0123456789"
COOKIE = "_U=E2E-SECRET-COOKIE-abcdef; MUID=E2E-MUID-SECRET"
# Every test gateway, bare ones too, paces its Copilot accounts out of the way: a module
# sends far more than 12 turns a minute to its one account, and a throttle it provokes
# must not rest that account for the next test. Pacing has tests of its own
# (test_pool.py, test_team.py), which set these themselves.
UNPACED = {"BINGO_ACCOUNT_RPM": "100000", "BINGO_ACCOUNT_CONCURRENCY": "100000", "BINGO_COOLDOWN_SECONDS": "0.001"}


def procfile_command() -> list[str]:
    line = (ROOT / "Procfile").read_text().strip()
    assert line.startswith("web: ")
    return shlex.split(line[len("web: "):])


class Gateway:
    """The Procfile command running against the sandbox, with its log captured."""

    def __init__(self, sandbox, log_path: Path, extra_args: str = "", bare: bool = False, **env: str) -> None:
        self.log_path = log_path
        # A free port can be taken by another test's server before gunicorn binds it;
        # then the port answers, but not as this gateway: start again on another one.
        for _ in range(3):
            self._start(sandbox, extra_args, bare, env)
            if self._is_ours():
                return
            self.stop()
        raise RuntimeError(f"the gateway did not start; its log: {self.log()[-2000:]}")

    def _start(self, sandbox, extra_args: str, bare: bool, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BING", "COPILOT_"))},
            "PORT": str(self.port),
            # Same command as the Procfile; only the bind narrows to loopback for tests.
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port} {extra_args}".strip(),
            "BINGO_COPILOT_URL": sandbox.copilot_url,
            **UNPACED,
            **env,
        }
        if not bare:
            environment = {**self._test_settings(sandbox), **environment}
        self._log = open(self.log_path, "ab")
        command = procfile_command()
        command[0] = str(Path(sys.executable).with_name(command[0]))
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 20.0)

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def _is_ours(self) -> bool:
        """This process is alive and its /healthz answers with a bingo request id."""
        try:
            connection = self._connection()
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            connection.close()
        except OSError:
            return False
        return self.process.poll() is None and (response.getheader("x-request-id") or "").startswith("req_")

    @staticmethod
    def _test_settings(sandbox) -> dict[str, str]:
        return {
            "BING_COOKIE": COOKIE,
            "BINGO_API_KEYS": API_KEY,
            "BINGO_CREATE_URL": sandbox.create_url,
            "BINGO_CHATHUB_URL": sandbox.chathub_url,
            "BINGO_COPILOT_URL": sandbox.copilot_url,
            "BINGO_KEEPALIVE_SECONDS": "1",
            "BINGO_IDLE_TIMEOUT": "5",
            "BINGO_CONNECT_TIMEOUT": "5",
        }

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield gw
    gw.stop()
    log = gw.log()
    assert API_KEY not in log and "E2E-SECRET-COOKIE" not in log and "E2E-MUID-SECRET" not in log


@pytest.fixture()
def sdk(gateway, sandbox):
    return openai.OpenAI(base_url=f"{gateway.base}/v1", api_key=API_KEY, max_retries=0, timeout=30)


@BOTH_UPSTREAMS
def test_openai_python_one_shot(sdk, model):
    reply = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert reply.object == "chat.completion" and reply.model == model
    assert reply.choices[0].message.content == expected_content("Hello")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@BOTH_UPSTREAMS
def test_openai_python_stream_matches_one_shot(sdk, model):
    messages = [{"role": "user", "content": "Stream me [sandbox:unicode]"}]
    one_shot = sdk.chat.completions.create(model=model, messages=messages).choices[0].message.content
    chunks = list(sdk.chat.completions.create(model=model, messages=messages, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == one_shot
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_openai_python_legacy_completions(sdk):
    reply = sdk.completions.create(model="Precise", prompt="Hello")
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith("Echo: Hello")


def test_openai_python_lists_models(sdk):
    assert [m.id for m in sdk.models.list()] == [
        "Creative", "Balanced", "Precise", "gpt-4",
        "copilot", "copilot-quick", "copilot-smart", "copilot-think-deeper", "copilot-study",
    ]
    assert sdk.models.retrieve("Precise").owned_by == "microsoft-copilot"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")


@pytest.mark.parametrize(
    "fault, exception, status",
    [
        ("error=too-many-messages", openai.RateLimitError, 429),
        ("cloudflare", openai.InternalServerError, 503),
        ("create-401", openai.InternalServerError, 502),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_openai_python_raises_the_right_class(sdk, sandbox, fault, exception, status, stream):
    sdk.chat.completions.create(model="Creative", messages=[{"role": "user", "content": "hi"}])  # a session is kept
    # A kept anonymous session Copilot calls invalid is retried once with a new one: refuse both.
    for _ in range(2 if fault == "create-401" else 1):
        sandbox.queue_fault(fault)
    with pytest.raises(exception) as raised:
        result = sdk.chat.completions.create(model="Creative", messages=[{"role": "user", "content": "hi"}], stream=stream)
        list(result) if stream else None
    assert raised.value.status_code == status
    assert raised.value.body["message"]


@pytest.fixture(scope="module")
def bare_gateway(sandbox_server, tmp_path_factory):
    """The Procfile command with no setting at all but BINGO_COPILOT_URL."""
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("bare") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


@pytest.mark.parametrize("model", ["Creative", "gpt-4o"])
def test_with_no_setting_the_seed_names_are_answered_by_copilot_as_the_app(bare_gateway, sandbox, model):
    client = openai.OpenAI(base_url=f"{bare_gateway.base}/v1", api_key="anything", max_retries=0, timeout=30)
    seen = len(sandbox.requests)
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert (reply.model, reply.choices[0].message.content) == (model, expected_content("Hello"))
    (start,) = sandbox.requests[seen:]  # one REST call, and it is the app's start
    assert start["path"] == "/c/api/start"
    assert {k.lower(): v for k, v in start["headers"].items()}["user-agent"].startswith("CopilotNative/")
    assert sandbox.received[-1][0]["event"] == "send" and sandbox.received[-1][0]["mode"] == "smart"


@pytest.fixture(scope="module")
def chathub_gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("chathub") / "gunicorn.log", BINGO_UPSTREAM="chathub")
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    "fault, exception, status",
    [
        ("throttled", openai.RateLimitError, 429),
        ("captcha", openai.InternalServerError, 503),
        ("create-unauthorized", openai.InternalServerError, 502),
    ],
)
def test_chathub_upstream_serves_the_seed_names_and_its_errors(chathub_gateway, sandbox, fault, exception, status):
    client = openai.OpenAI(base_url=f"{chathub_gateway.base}/v1", api_key=API_KEY, max_retries=0, timeout=30)
    reply = client.chat.completions.create(model="Creative", messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content == expected_content("Hello")
    assert sandbox.received[-1][2]["arguments"][0]["tone"] == "Creative"
    assert client.models.retrieve("Precise").owned_by == "bing-chathub"
    sandbox.queue_fault(fault)
    with pytest.raises(exception) as raised:
        list(client.chat.completions.create(model="Creative", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert raised.value.status_code == status


def test_openai_python_wrong_key_is_authentication_error(gateway, sandbox):
    client = openai.OpenAI(base_url=f"{gateway.base}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="Creative", messages=[{"role": "user", "content": "hi"}])


@BOTH_UPSTREAMS
def test_openai_python_in_band_error_raises_api_error(sdk, model):
    stream = sdk.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "[sandbox:drop] [sandbox:updates=10]"}])
    with pytest.raises(openai.APIError, match="dropped the connection"):
        list(stream)


def test_raw_stream_bytes(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps({"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "raw"}]})
    connection.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {API_KEY}"})
    response = connection.getresponse()
    raw = response.read()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("X-Accel-Buffering") == "no"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert raw.startswith(b'data: {"id":"chatcmpl-')
    assert raw.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert b"event:" not in raw and b"\r" not in raw
    assert content_of(read_sse(raw.decode())) == expected_content("raw")


def test_curl_example_from_the_readme(gateway):
    env = {**os.environ, "BINGO_URL": f"{gateway.base}/v1", "BINGO_API_KEY": API_KEY}
    done = subprocess.run(["bash", str(ROOT / "examples" / "curl.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = read_sse(done.stdout)
    assert events[-1] == "[DONE]"
    assert content_of(events) == expected_content("Hello")


def test_curl_seed_example_without_content_type(gateway):
    """The seed's own example: -d with a JSON header, and -kL --compressed."""
    done = subprocess.run(
        ["curl", "-skL", f"{gateway.base}/api/v1/chat/completions", "-H", "Content-Type: application/json",
         "-H", f"Authorization: Bearer {API_KEY}", "--compressed",
         "-d", '{"messages":[{"role":"user","content":"Hello"}],"stream":true,"model":"Creative"}'],
        capture_output=True, text=True, timeout=60)
    assert read_sse(done.stdout)[-1] == "[DONE]"


def test_python_example_from_the_readme(gateway):
    env = {**os.environ, "BINGO_URL": f"{gateway.base}/v1", "BINGO_API_KEY": API_KEY}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "chat.py")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "Echo: Hello"
    assert "Echo: Hello again" in done.stdout


@pytest.mark.skipif(not (ROOT / "tests" / "node" / "node_modules" / "openai").is_dir() or not shutil.which("node"),
                    reason="the openai npm package is not installed (scripts/test.sh installs it when npm exists)")
def test_node_example_from_the_readme(gateway):
    script = ROOT / "tests" / "node" / "_example.mjs"  # beside node_modules so `import 'openai'` resolves
    shutil.copy(ROOT / "examples" / "chat.mjs", script)
    try:
        env = {**os.environ, "BINGO_URL": f"{gateway.base}/v1", "BINGO_API_KEY": API_KEY}
        done = subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=60)
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected_content("Hello") + "\n"


def test_readme_shows_the_examples_verbatim():
    readme = (ROOT / "README.md").read_text()
    for name in ("curl.sh", "chat.py", "chat.mjs"):
        assert (ROOT / "examples" / name).read_text().strip() in readme, name


def post_stream(gateway: Gateway, model: str, prompt: str) -> socket.socket:
    """Send a stream request on a raw socket and return the socket, unread."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]})
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    return sock


@BOTH_UPSTREAMS
def test_client_disconnect_closes_upstream_within_a_second(gateway, sandbox, model):
    sock = post_stream(gateway, model, "[sandbox:updates=60] [sandbox:delay=0.1]")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert sandbox.stats()["open"] >= 1
    sock.close()
    assert sandbox.wait_idle(1.0)


@BOTH_UPSTREAMS
def test_disconnect_while_upstream_is_silent_is_noticed(gateway, sandbox, model):
    """No write is pending, so only the socket watch can tell that the client left."""
    sock = post_stream(gateway, model, "[sandbox:slow-first=4]")
    time.sleep(0.3)
    assert sandbox.stats()["open"] >= 1
    sock.close()
    assert sandbox.wait_idle(1.0)


def test_stream_outlives_gunicorn_timeout(sandbox_server, tmp_path):
    # gthread heartbeats about once a second, so 2 s is the shortest honest timeout;
    # the answer streams for about 4 s, twice as long.
    gw = Gateway(sandbox_server, tmp_path / "gunicorn.log", extra_args="--timeout 2")
    try:
        client = openai.OpenAI(base_url=f"{gw.base}/v1", api_key=API_KEY, max_retries=0)
        prompt = "[sandbox:updates=40] [sandbox:delay=0.1]"
        chunks = list(client.chat.completions.create(model="Creative", stream=True, messages=[{"role": "user", "content": prompt}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected_content(prompt)
        assert "WORKER TIMEOUT" not in gw.log()
    finally:
        gw.stop()


def test_bad_setting_stops_gunicorn_with_a_message_naming_it(tmp_path):
    command = procfile_command()
    command[0] = str(Path(sys.executable).with_name(command[0]))
    port = free_port()
    env = {**os.environ, "BINGO_IDLE_TIMEOUT": "soon", "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "BINGO_IDLE_TIMEOUT must be a number of seconds, not 'soon'" in done.stderr + done.stdout


# Tools and structured output with the SDK's own helpers (issue #10).

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def scripted_prompt(question: str, *replies: str) -> list[dict]:
    """A question the sandbox answers with `replies[0]`, and a follow-up with the next."""
    import base64

    encoded = ",".join(base64.urlsafe_b64encode(r.encode()).decode().rstrip("=") for r in replies)
    return [{"role": "user", "content": f"{question} [sandbox:replies={encoded}]"}]


def test_openai_python_tool_calls_one_shot_and_stream(sdk):
    reply = 'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    messages = scripted_prompt("Weather in Paris?", reply, "It is 21 C in Paris.")
    one_shot = sdk.chat.completions.create(model="copilot", messages=messages, tools=[WEATHER_TOOL])
    assert one_shot.choices[0].finish_reason == "tool_calls"
    message = one_shot.choices[0].message
    assert message.content == "Checking."
    assert [(c.type, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("function", "get_weather", '{"city": "Paris"}')]
    with sdk.chat.completions.stream(model="copilot", messages=messages, tools=[WEATHER_TOOL]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    streamed = final.choices[0].message
    assert streamed.content == message.content and final.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in streamed.tool_calls] == [
        (c.function.name, c.function.arguments) for c in message.tool_calls]
    # The results go back in the next request, as the SDK builds it.
    follow_up = [*messages, message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "21 C"}]
    again = sdk.chat.completions.create(model="copilot", messages=follow_up, tools=[WEATHER_TOOL])
    assert (again.choices[0].finish_reason, again.choices[0].message.content) == ("stop", "It is 21 C in Paris.")


def test_openai_python_parse_with_a_pydantic_model(sdk):
    import pydantic

    class Weather(pydantic.BaseModel):
        city: str
        celsius: float

    messages = scripted_prompt("Weather?", 'Here:\n```json\n{"city": "Paris", "celsius": 21.5}\n```')
    parsed = sdk.chat.completions.parse(model="copilot", messages=messages, response_format=Weather)
    assert parsed.choices[0].message.parsed == Weather(city="Paris", celsius=21.5)
