"""Image input (issue #12): image parts in, `/c/api/attachments` uploads, image parts in the send.

Against the sandbox over loopback: the exact upload requests it received (bytes,
Content-Type, Bearer), the exact content parts of the `send`, and answers in which
the sandbox describes each attachment it was shown (type, size, sha256), so the
image provably arrived. Every refusal is an exact 400 body, and each one is shown to
reach nothing upstream. URL fetching runs against a local HTTP server on 127.0.0.1:
refused as loopback, and allowed only through the test-only setting
`fetch_images_from_loopback` (never read from the environment).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
import requests
import trustme

from bingo import create_app
from bingo.config import ConfigError, Settings
from bingo.image_fetch import ImageFetcher, refused
from bingo.images import MAX_IMAGE_BYTES, FetchFailed, ImageRef, load
from bingo.sandbox import Sandbox
from bingo.sandbox.identity import IdentityServer
from bingo.sandbox.uploads import KEPT, Attachments
from bingo.wire import Message
from tests.conftest import with_settings
from tests.helpers import content_of, expected_content, read_sse
from tests.test_e2e import API_KEY, Gateway
from tests.test_reliability import Contract

TOKEN = "image-test-ACCESS-TOKEN-0123456789"
# A real 1x1 PNG (69 bytes), and the first bytes of the other three formats.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
QUESTION = "What is in this image?"
ONE_PNG = "data:image/png;base64," + base64.b64encode(PNG).decode()


def data_url(data: bytes, declared: str = "image/png") -> str:
    return f"data:{declared};base64,{base64.b64encode(data).decode()}"


def image(url: str, **extra: object) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def user(*parts: dict, text: str = QUESTION) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def seen(*shown: tuple[str, bytes], text: str = QUESTION) -> str:
    """The prompt the sandbox answers when it was shown these (type, bytes) images."""
    lines = [
        f"[image {n}: {mime}, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}]"
        for n, (mime, data) in enumerate(shown, 1)
    ]
    return "\n".join([*lines, text])


def refusal(param: str, message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


@pytest.fixture(scope="module")
def contract() -> Contract:
    """The gateway's own /openapi.json, which every body here must satisfy."""
    return Contract.load()


@pytest.fixture()
def signed_in(settings: Settings) -> Settings:
    return with_settings(settings, copilot_access_token=TOKEN)


@pytest.fixture()
def client_in(signed_in: Settings):
    return create_app(signed_in).test_client()


def ask(client, messages: list, *, stream: bool = False, model: str = "copilot"):
    return client.post("/v1/chat/completions", json={"model": model, "stream": stream, "messages": messages})


def last_send(sandbox: Sandbox) -> dict:
    (send,) = [frame for frame in sandbox.received[-1] if frame.get("event") == "send"]
    return send


class Upstream:
    """Counts what reached the sandbox, to show a refusal reached nothing."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._counts = self._now()

    def _now(self) -> tuple[int, int]:
        return len(self._sandbox.requests), len(self._sandbox.received)

    def untouched(self) -> bool:
        return self._now() == self._counts


# -- carried to Copilot ---------------------------------------------------------------


def test_each_image_is_uploaded_after_start_with_its_bytes_type_and_bearer(client_in, sandbox):
    before = len(sandbox.requests)
    reply = ask(client_in, [user(image(data_url(PNG)), image(data_url(JPEG, "image/png"), detail="low"))])
    assert reply.status_code == 200, reply.get_json()
    start, first, second = sandbox.requests[before:]
    assert (start["method"], start["path"]) == ("POST", "/c/api/start")
    assert start["headers"]["Authorization"] == f"Bearer {TOKEN}"
    # The JPEG was declared image/png: the type is read from the bytes.
    for upload, data, mime in ((first, PNG, "image/png"), (second, JPEG, "image/jpeg")):
        assert (upload["method"], upload["path"], upload["query"]) == ("POST", "/c/api/attachments", {})
        assert upload["body"] == data
        assert upload["headers"]["Content-Type"] == mime
        assert upload["headers"]["Content-Length"] == str(len(data))
        assert upload["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert upload["headers"]["User-Agent"] == start["headers"]["User-Agent"]


def test_send_carries_the_image_parts_before_the_text(client_in, sandbox):
    reply = ask(client_in, [user(image(data_url(PNG)), image(data_url(GIF)))])
    assert reply.status_code == 200
    content = last_send(sandbox)["content"]
    urls = [part["url"] for part in content[:2]]
    # The relative URLs the sandbox answered, handed on unresolved as public clients do.
    assert all(url.startswith("/c/api/attachments/") and len(url) == len("/c/api/attachments/") + 24 for url in urls)
    assert content == [
        {"type": "image", "url": urls[0]},
        {"type": "image", "url": urls[1]},
        {"type": "text", "text": QUESTION},
    ]


def test_one_shot_answer_shows_the_images_arrived(client_in, sandbox):
    reply = ask(client_in, [user(image(data_url(PNG)), image(data_url(WEBP, "image/webp")))])
    assert reply.status_code == 200
    expected = expected_content(seen(("image/png", PNG), ("image/webp", WEBP)))
    assert reply.get_json()["choices"][0]["message"]["content"] == expected


def test_streamed_answer_shows_the_image_arrived(client_in, sandbox):
    reply = ask(client_in, [user(image(data_url(JPEG, "image/jpeg")))], stream=True)
    assert reply.status_code == 200 and reply.mimetype == "text/event-stream"
    events = read_sse(reply.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    assert content_of(events) == expected_content(seen(("image/jpeg", JPEG)))


def test_string_form_and_percent_encoded_data_urls(client_in, sandbox):
    percent = "data:image/gif," + "".join(f"%{b:02X}" for b in GIF)
    reply = ask(client_in, [user({"type": "image_url", "image_url": percent})])
    assert reply.status_code == 200
    assert reply.get_json()["choices"][0]["message"]["content"] == expected_content(seen(("image/gif", GIF)))


def test_earlier_images_are_markers_and_only_the_last_users_are_sent(client_in, sandbox):
    before = len(sandbox.requests)
    messages = [
        # Earlier images are history: never decoded (this one would not decode) nor uploaded.
        user(image("data:image/png;base64,!!not-base64!!"), image(data_url(GIF)), text="And these?"),
        {"role": "assistant", "content": "Two pictures."},
        user(image(data_url(PNG)), text="And this one?"),
    ]
    reply = ask(client_in, messages)
    assert reply.status_code == 200
    assert [r["path"] for r in sandbox.requests[before:]] == ["/c/api/start", "/c/api/attachments"]
    text = "User: And these?\n[image]\n[image]\nAssistant: Two pictures.\nUser: And this one?"
    assert last_send(sandbox)["content"][1] == {"type": "text", "text": text}
    content = reply.get_json()["choices"][0]["message"]["content"]
    assert content == expected_content(seen(("image/png", PNG), text=text))


def test_an_image_only_question_sends_an_empty_text_part(client_in, sandbox):
    reply = ask(client_in, [{"role": "user", "content": [image(data_url(PNG))]}])
    assert reply.status_code == 200
    assert last_send(sandbox)["content"][1] == {"type": "text", "text": ""}
    assert reply.get_json()["choices"][0]["message"]["content"] == expected_content(seen(("image/png", PNG), text=""))


def test_responses_api_input_image(client_in, sandbox):
    body = {"model": "copilot", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": QUESTION}, {"type": "input_image", "image_url": data_url(PNG), "detail": "auto"},
    ]}]}
    reply = client_in.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["output"][0]["content"][0]["text"] == expected_content(seen(("image/png", PNG)))
    assert [p["type"] for p in last_send(sandbox)["content"]] == ["image", "text"]


def test_upload_carries_the_sessions_cookie(client_in, sandbox):
    """The anonymous-session cookie /c/api/start set rides on the upload as on the upgrade."""
    before = len(sandbox.requests)
    assert ask(client_in, [user(image(ONE_PNG))]).status_code == 200
    upload = sandbox.requests[before:][1]
    cookie = sandbox.upgrades[-1]["headers"]["Cookie"]
    assert cookie.startswith("__Host-copilot-anon=") and upload["headers"]["Cookie"] == cookie


def test_a_corrective_turn_sends_the_images_again(client_in, sandbox):
    """response_format JSON, which the sandbox's echo never is: the corrective turn is a
    new conversation, so its images are uploaded to it again (read once, sent twice)."""
    before = len(sandbox.requests)
    body = {"model": "copilot", "messages": [user(image(ONE_PNG))], "response_format": {"type": "json_object"}}
    reply = client_in.post("/v1/chat/completions", json=body)
    assert reply.status_code == 502 and reply.get_json()["error"]["code"] == "invalid_model_output"
    paths = [r["path"] for r in sandbox.requests[before:]]
    assert paths == ["/c/api/start", "/c/api/attachments"] * 2
    first, second = (next(f for f in frames if f.get("event") == "send") for frames in sandbox.received[-2:])
    for send in (first, second):
        assert [p["type"] for p in send["content"]] == ["image", "text"]
    assert f"\n\nUser: {QUESTION}\n[image]\nAssistant: " in second["content"][1]["text"]


def test_responses_history_keeps_an_image_marker(client_in, sandbox):
    content = [{"type": "input_text", "text": QUESTION}, {"type": "input_image", "image_url": ONE_PNG}]
    first = client_in.post("/v1/responses", json={"model": "copilot", "input": [{"role": "user", "content": content}]})
    answer = first.get_json()["output"][0]["content"][0]["text"]
    before = len(sandbox.requests)
    second = client_in.post("/v1/responses", json={
        "model": "copilot", "input": "And then?", "previous_response_id": first.get_json()["id"],
    })
    assert second.status_code == 200
    assert [r["path"] for r in sandbox.requests[before:]] == ["/c/api/start"]  # nothing uploaded again
    assert last_send(sandbox)["content"] == [
        {"type": "text", "text": f"User: {QUESTION}\n[image]\nAssistant: {answer}\nUser: And then?"},
    ]


def test_responses_api_refusals_name_their_own_params(client_in, sandbox):
    upstream = Upstream(sandbox)
    content = [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": data_url(b"plain text")}]
    reply = client_in.post("/v1/responses", json={"model": "copilot", "input": [{"role": "user", "content": content}]})
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "input[0].content[1]",
        "'input[0].content[1]' is not an image this gateway can send: its bytes are not PNG, JPEG, GIF or WebP "
        "(the type is read from the data, not from what the URL declares).",
        "invalid_image_format",
    ))
    file_id = [{"type": "input_image", "file_id": "file-123"}]
    reply = client_in.post("/v1/responses", json={"model": "copilot", "input": [{"role": "user", "content": file_id}]})
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "input[0].content[0].image_url",
        "'input[0].content[0].image_url' must be a string: a data: URL (data:image/png;base64,...) or an http(s) "
        "URL. This gateway keeps no files, so file_id is not supported.",
    ))
    assert upstream.untouched()


# -- refusals: exact bodies, nothing upstream -------------------------------------------

TOO_BIG = data_url(PNG + bytes(MAX_IMAGE_BYTES))


@pytest.mark.parametrize(("messages", "param", "message", "code"), [
    (
        [user(*[image(ONE_PNG)] * 5)],
        "messages[0].content[5]",
        (
            "'messages[0].content[5]' is image 5 of the last user message; at most 4 images go with one request. "
            "Send fewer images."
        ),
        "too_many_images",
    ),
    (
        [user(image(TOO_BIG))],
        "messages[0].content[1]",
        "'messages[0].content[1]' is larger than 10 MiB, the most one image may be. Send a smaller image.",
        "image_too_large",
    ),
    (
        [user(image(data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")))],
        "messages[0].content[1]",
        (
            "'messages[0].content[1]' is not an image this gateway can send: its bytes are not PNG, JPEG, GIF or WebP "
            "(the type is read from the data, not from what the URL declares)."
        ),
        "invalid_image_format",
    ),
    (
        [user(image("data:image/png;base64,iVBORw0KGgo*"))],
        "messages[0].content[1]",
        "'messages[0].content[1]' is a data: URL whose base64 data does not decode.",
        None,
    ),
    (
        [user(image("https://example.com/cat.png"))],
        "messages[0].content[1]",
        (
            "'messages[0].content[1]' is an http(s) URL, and this gateway fetches image URLs only when "
            "BINGO_FETCH_IMAGES=1. Send the image inline as a data: URL (data:image/png;base64,...)."
        ),
        "invalid_image_url",
    ),
    (
        [user(image("ftp://example.com/cat.png"))],
        "messages[0].content[1]",
        "'messages[0].content[1]' must carry its image as a data: URL (data:image/png;base64,...) or an http(s) URL.",
        None,
    ),
    (
        [user({"type": "image_url", "image_url": 7})],
        "messages[0].content[1].image_url",
        "'messages[0].content[1].image_url' must be an object like {\"url\": \"data:image/png;base64,...\"}.",
        None,
    ),
    (
        [user(image(ONE_PNG, detail="ultra"))],
        "messages[0].content[1].image_url.detail",
        "'messages[0].content[1].image_url.detail' must be one of auto, low, high.",
        None,
    ),
    (
        [{"role": "system", "content": [image(ONE_PNG)]}, user()],
        "messages[0].content[0]",
        "'messages[0].content[0]' is an image in a 'system' message; only user messages may carry images.",
        None,
    ),
], ids=["too-many", "too-big", "svg-is-not-an-image", "bad-base64", "http-fetching-off", "ftp", "not-an-object",
        "bad-detail", "not-a-user-message"])
def test_refusals_are_exact_400s_that_reach_nothing(signed_in, sandbox, contract, messages, param, message, code):
    client = create_app(with_settings(signed_in, max_body_bytes=16 * 1024 * 1024)).test_client()
    upstream = Upstream(sandbox)
    reply = ask(client, messages)
    assert (reply.status_code, reply.get_json()) == (400, refusal(param, message, code))
    assert reply.headers["x-should-retry"] == "false"
    assert upstream.untouched()
    contract.check("POST", "/v1/chat/completions", 400, "application/json", reply.get_data())


def test_no_signed_in_account_is_a_400_before_any_upstream_call(client, sandbox):
    upstream = Upstream(sandbox)
    reply = ask(client, [user(image(ONE_PNG))])
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "messages[0].content[1]",
        "'messages[0].content[1]' is an image, and Copilot takes images only from a signed-in account; this gateway "
        "has none. Set COPILOT_ACCESS_TOKEN, COPILOT_REFRESH_TOKEN, or a line with a refresh_token in "
        "COPILOT_ACCOUNTS_FILE, or send the request without images.",
    ))
    assert upstream.untouched()


def test_chathub_takes_no_images(client_in, sandbox):
    upstream = Upstream(sandbox)
    reply = ask(client_in, [user(image(ONE_PNG))], model="Creative")  # BINGO_UPSTREAM=chathub here
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "messages[0].content[1]",
        "'messages[0].content[1]' is an image, and the Bing ChatHub upstream (BINGO_UPSTREAM=chathub) does not take "
        "images. Ask a Copilot model (\"copilot\"), with a signed-in account.",
    ))
    assert upstream.untouched()


def test_exactly_ten_mib_is_accepted():
    data = PNG + bytes(MAX_IMAGE_BYTES - len(PNG))
    ref = ImageRef(data_url(data), "messages[0].content[0]")
    (loaded,) = load([Message("user", "", images=(ref,))], "copilot", None)
    assert (loaded.mime, len(loaded.data), loaded.param) == ("image/png", MAX_IMAGE_BYTES, "messages[0].content[0]")


def test_uploads_carry_the_accounts_refreshed_token(settings, sandbox, tmp_path):
    """A refresh-token account: each upload's Bearer is the access token the identity
    service minted for it, and after Copilot refuses an expired one (401 on the
    start), the refreshed token is the one the retried turn's upload carries."""
    with IdentityServer() as identity:
        sandbox.check_tokens(lambda token: identity.account_of(token) is not None)
        try:
            accounts = tmp_path / "accounts.jsonl"
            accounts.write_text(json.dumps({"name": "lima", "refresh_token": identity.issue_refresh_token("lima")}) + "\n")
            client = create_app(with_settings(settings, copilot_accounts_file=str(accounts), login_url=identity.url)).test_client()
            tokens = []
            for when in ("first", "after expiry"):
                if when == "after expiry":
                    identity.expire("lima")  # Copilot now refuses the cached token with 401
                before = len(sandbox.requests)
                reply = ask(client, [user(image(ONE_PNG), text=when)])
                assert reply.status_code == 200, reply.get_json()
                assert reply.get_json()["choices"][0]["message"]["content"] == expected_content(seen(("image/png", PNG), text=when))
                (upload,) = [r for r in sandbox.requests[before:] if r["path"] == "/c/api/attachments"]
                tokens.append(upload["headers"]["Authorization"].removeprefix("Bearer "))
        finally:
            sandbox.check_tokens(None)
    assert [identity.account_of(t) for t in tokens] == [None, "lima"]  # the first one expired
    assert tokens[0] != tokens[1] and identity.refreshes == 2


# -- the sandbox's attachments endpoint -----------------------------------------------------


def test_sandbox_attachments_need_a_bearer_and_a_started_conversation(sandbox):
    url = f"{sandbox.copilot_url}/c/api/attachments"
    headers = {"Content-Type": "image/png"}
    assert requests.post(url, data=PNG, headers=headers, timeout=5).status_code == 401
    fresh = {**headers, "Authorization": "Bearer never-started-a-conversation"}
    refused_early = requests.post(url, data=PNG, headers=fresh, timeout=5)
    assert (refused_early.status_code, refused_early.json()) == (400, {"message": "No conversation to attach to: start one first."})
    start = requests.post(f"{sandbox.copilot_url}/c/api/start", json={}, headers=fresh, timeout=5)
    assert start.status_code == 200
    stored = requests.post(url, data=PNG, headers=fresh, timeout=5)
    assert stored.status_code == 200 and list(stored.json()) == ["url"]
    assert stored.json()["url"].startswith("/c/api/attachments/")
    wrong_type = requests.post(url, data=b"%PDF-1.7", headers={**fresh, "Content-Type": "application/pdf"}, timeout=5)
    assert wrong_type.status_code == 415


def test_sandbox_attachments_apply_the_token_check(sandbox):
    """With check_tokens set, an upload whose token fails it is a 401, as a create's is."""
    headers = {"Content-Type": "image/png", "Authorization": "Bearer soon-expired"}
    assert requests.post(f"{sandbox.copilot_url}/c/api/start", json={}, headers=headers, timeout=5).status_code == 200
    sandbox.check_tokens(lambda token: token != "soon-expired")
    try:
        refused_upload = requests.post(f"{sandbox.copilot_url}/c/api/attachments", data=PNG, headers=headers, timeout=5)
    finally:
        sandbox.check_tokens(None)
    assert (refused_upload.status_code, refused_upload.json()) == (401, {"message": "Invalid session"})


def test_sandbox_keeps_the_last_uploads_only():
    store = Attachments()
    urls = [store.store("image/png", PNG).url for _ in range(KEPT + 1)]
    assert store.get(urls[0]) is None and store.get(urls[1]) is not None and store.get(urls[-1]).data == PNG


# -- fetching http(s) URLs (BINGO_FETCH_IMAGES=1) ---------------------------------------------


@dataclass
class ImageServer:
    """A local HTTP server: path -> (status, headers, body); counts what it was asked."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    trickle: float = 0.0  # seconds between bytes of the whole reply, head included
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextlib.contextmanager
def serving(state: ImageServer, context: ssl.SSLContext | None = None) -> Iterator[ImageServer]:
    """Serve `state` on 127.0.0.1 (over TLS with `context`) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            status, headers, body = state.routes.get(self.path, (404, {}, b"not found"))
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            reply = head.encode() + body
            pieces = [reply] if not state.trickle else [bytes([b]) for b in reply[:200]]  # bounded
            for piece in pieces:
                try:
                    self.wfile.write(piece)
                    self.wfile.flush()
                except OSError:  # the gateway stopped reading: over the cap, or out of time
                    return
                time.sleep(state.trickle)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def image_server() -> Iterator[ImageServer]:
    with serving(ImageServer()) as state:
        yield state


def test_fetching_a_loopback_url_is_refused_before_connecting(signed_in, sandbox, image_server):
    image_server.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    client = create_app(with_settings(signed_in, fetch_images=True)).test_client()
    upstream = Upstream(sandbox)
    reply = ask(client, [user(image(image_server.url("/cat.png")))])
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "messages[0].content[1]",
        "'messages[0].content[1]': the image at http://127.0.0.1 could not be fetched: 127.0.0.1 is a loopback "
        "address, which this gateway never fetches from.",
        "invalid_image_url",
    ))
    # A name is resolved and each of its addresses checked (localhost may say ::1 first).
    message = fetch_refusal(client, image_server.url("/cat.png", "localhost"))
    assert re.fullmatch(
        r"'messages\[0\]\.content\[1\]': the image at http://localhost could not be fetched: localhost "
        r"\((127\.0\.0\.1|::1)\) is a loopback address, which this gateway never fetches from\.", message,
    ), message
    assert image_server.hits == [] and upstream.untouched()


def test_fetched_image_arrives(signed_in, sandbox, image_server):
    # Served as text/plain: the type still comes from the bytes.
    image_server.routes["/cat"] = (200, {"Content-Type": "text/plain"}, PNG)
    loopback_ok = with_settings(signed_in, fetch_images=True, fetch_images_from_loopback=True)
    reply = ask(create_app(loopback_ok).test_client(), [user(image(image_server.url("/cat")))])
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["choices"][0]["message"]["content"] == expected_content(seen(("image/png", PNG)))
    assert image_server.hits == ["/cat"]


def test_no_signed_in_account_is_a_400_before_any_image_is_fetched(settings, sandbox, image_server):
    """The pool's check comes first: a URL is fetched only for a request some account can serve."""
    image_server.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
    fetching = with_settings(settings, fetch_images=True, fetch_images_from_loopback=True)
    upstream = Upstream(sandbox)
    reply = ask(create_app(fetching).test_client(), [user(image(ONE_PNG), image(image_server.url("/cat.png")))])
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "messages[0].content[1]",
        "'messages[0].content[1]' is an image, and Copilot takes images only from a signed-in account; this gateway "
        "has none. Set COPILOT_ACCESS_TOKEN, COPILOT_REFRESH_TOKEN, or a line with a refresh_token in "
        "COPILOT_ACCOUNTS_FILE, or send the request without images.",
    ))
    assert image_server.hits == [] and upstream.untouched()


def fetch_refusal(client, url: str) -> str:
    reply = ask(client, [user(image(url))])
    assert reply.status_code == 400, reply.get_json()
    return reply.get_json()["error"]["message"]


def test_fetch_follows_redirects_only_to_checked_addresses(signed_in, sandbox, image_server):
    client = create_app(with_settings(signed_in, fetch_images=True, fetch_images_from_loopback=True)).test_client()
    image_server.routes["/hop"] = (302, {"Location": "/cat"}, b"")
    image_server.routes["/cat"] = (200, {}, GIF)
    image_server.routes["/inside"] = (302, {"Location": "http://10.255.255.1/secret.png"}, b"")
    image_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    image_server.routes["/gone"] = (404, {}, b"")
    assert ask(client, [user(image(image_server.url("/hop")))]).status_code == 200
    assert fetch_refusal(client, image_server.url("/inside")) == (
        "'messages[0].content[1]': the image at http://127.0.0.1 could not be fetched: 10.255.255.1 is a private "
        "address, which this gateway never fetches from."
    )
    assert fetch_refusal(client, image_server.url("/loop")).endswith("could not be fetched: it redirected more than 3 times.")
    assert fetch_refusal(client, image_server.url("/gone")).endswith("could not be fetched: it answered HTTP 404.")
    assert image_server.hits == ["/hop", "/cat", "/inside", *["/loop"] * 4, "/gone"]


def test_fetch_is_capped_in_size(signed_in, sandbox, image_server):
    image_server.routes["/huge"] = (200, {}, PNG + bytes(MAX_IMAGE_BYTES))
    client = create_app(with_settings(signed_in, fetch_images=True, fetch_images_from_loopback=True)).test_client()
    reply = ask(client, [user(image(image_server.url("/huge")))])
    assert (reply.status_code, reply.get_json()) == (400, refusal(
        "messages[0].content[1]",
        "'messages[0].content[1]': the image at http://127.0.0.1 could not be fetched: it is larger than 10 MiB, "
        "the most one image may be.",
        "image_too_large",
    ))


def test_fetch_is_capped_in_wall_clock_time_even_when_bytes_trickle(signed_in, image_server):
    """A byte every 0.05 s never trips a socket timeout; the deadline still holds."""
    image_server.routes["/slow"] = (200, {}, PNG)
    image_server.trickle = 0.05
    fetch = ImageFetcher(with_settings(signed_in, fetch_images_from_loopback=True), seconds=1.0)
    started = time.monotonic()
    with pytest.raises(FetchFailed) as info:
        fetch(image_server.url("/slow"))
    assert info.value.reason == "it did not arrive within 1 s"
    assert 0.9 <= time.monotonic() - started < 2.0


def test_https_fetch_connects_to_the_checked_address_and_verifies_the_name(signed_in, tmp_path):
    """The connection goes to the checked address; the certificate is checked against the URL's name."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)  # the name only, not 127.0.0.1
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = with_settings(signed_in, fetch_images_from_loopback=True, ca_bundle=str(tmp_path / "ca.pem"))
    with serving(ImageServer(routes={"/cat": (200, {}, WEBP)}), context) as server:
        assert ImageFetcher(settings, seconds=5.0)(f"https://localhost:{server.port}/cat") == WEBP
        with pytest.raises(FetchFailed) as info:
            ImageFetcher(settings, seconds=5.0)(f"https://127.0.0.1:{server.port}/cat")
    assert info.value.reason == "the connection failed (SSLCertVerificationError)"
    assert server.hits == ["/cat"]


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("2002:7f00:1::", "a loopback address"),  # 6to4 around 127.0.0.1
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fd00::1", "a private address"),
    ("64:ff9b::a00:1", "a private address"),  # NAT64 around 10.0.0.1
    ("169.254.169.254", "a link-local address"),  # cloud metadata
    ("fe80::1%eth0", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("240.0.0.1", "a reserved address"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT
    ("93.184.215.14", None),
    ("2606:4700:4700::1111", None),
])
def test_address_check(address, why):
    assert refused(address) == why


def test_loopback_is_allowed_only_by_the_test_setting():
    assert refused("127.0.0.1", loopback_ok=True) is None
    assert refused("10.0.0.1", loopback_ok=True) == "a private address"
    assert Settings.from_env({"BINGO_FETCH_IMAGES": "1"}).fetch_images_from_loopback is False


@pytest.mark.parametrize(("raw", "expected"), [("", False), ("0", False), ("1", True), ("yes", True)])
def test_fetch_images_setting(raw, expected):
    assert Settings.from_env({"BINGO_FETCH_IMAGES": raw}).fetch_images is expected


def test_bad_fetch_images_setting_names_the_variable():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"BINGO_FETCH_IMAGES": "maybe"})
    assert str(info.value) == "BINGO_FETCH_IMAGES must be 1 or 0, not 'maybe'"


def test_no_image_bytes_or_token_in_reprs():
    ref = ImageRef(data_url(PNG), "p")
    assert "iVBOR" not in repr(ref) and "iVBOR" not in repr(Message("user", "", images=(ref,)))
    assert TOKEN not in repr(Settings(copilot_access_token=TOKEN))


# -- the Procfile command, driven by the openai SDK ---------------------------------------


@pytest.fixture(scope="module")
def signed_in_gateway(sandbox_server, tmp_path_factory):
    gateway = Gateway(sandbox_server, tmp_path_factory.mktemp("images") / "gunicorn.log", COPILOT_ACCESS_TOKEN=TOKEN)
    yield gateway
    gateway.stop()
    assert TOKEN not in gateway.log()


@pytest.mark.e2e
def test_openai_sdk_sends_an_image_through_gunicorn(signed_in_gateway, sandbox):
    sdk = openai.OpenAI(base_url=f"{signed_in_gateway.base}/v1", api_key=API_KEY, max_retries=0, timeout=30)
    messages = [user(image(data_url(PNG)), image(data_url(GIF, "image/gif"), detail="high"))]
    reply = sdk.chat.completions.create(model="copilot", messages=messages)
    assert reply.choices[0].message.content == expected_content(seen(("image/png", PNG), ("image/gif", GIF)))
    chunks = list(sdk.chat.completions.create(model="copilot", messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="copilot", messages=[user(image(data_url(b"GIF00")))])
    assert info.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert info.value.body["code"] == "invalid_image_format"  # type: ignore[index]


@pytest.mark.e2e
def test_the_readme_image_example_runs_against_the_sandbox(signed_in_gateway, sandbox):
    root = Path(__file__).resolve().parent.parent
    example = root / "examples" / "image.py"
    assert example.read_text().strip() in (root / "README.md").read_text()
    env = {"PATH": "/usr/bin:/bin", "BINGO_URL": f"{signed_in_gateway.base}/v1", "BINGO_API_KEY": API_KEY}
    done = subprocess.run([sys.executable, str(example)], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected_content(seen(("image/png", PNG))) + "\n"


# -- Copilot refusing an upload: the failure table ------------------------------------------


@pytest.mark.parametrize(("fault", "status", "error"), [
    ("attachment-401", 502, {
        # The account pool flags the account (its only one) and says so.
        "message": "Copilot's attachment upload refused the credentials (HTTP 401): refresh COPILOT_COOKIE or "
                   "COPILOT_ACCESS_TOKEN. Accounts needing attention: default.",
        "type": "upstream_error", "param": None, "code": "upstream_auth_failed",
    }),
    ("attachment-413", 400, {
        "message": "Copilot's attachment upload refused 'messages[0].content[1]' as too large (HTTP 413). "
                   "Send a smaller image.",
        "type": "invalid_request_error", "param": "messages[0].content[1]", "code": "image_too_large",
    }),
    ("attachment-nourl", 502, {
        "message": "Copilot's attachment upload answered HTTP 200 without the image's URL ({\"url\": ...}).",
        "type": "upstream_error", "param": None, "code": "bad_upstream_frame",
    }),
], ids=["401", "413", "no-url"])
def test_a_refused_upload_is_the_tables_error_and_opens_no_socket(client_in, sandbox, fault, status, error):
    sandbox.queue_fault(fault)
    sockets = len(sandbox.received)
    reply = ask(client_in, [user(image(ONE_PNG))])
    assert (reply.status_code, reply.get_json()) == (status, {"error": error})
    assert len(sandbox.received) == sockets
