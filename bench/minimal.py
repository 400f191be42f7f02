"""Baseline "minimal": the least a client can do to read one answer; the floor.

http.client for the conversation create, websocket-client for the socket with UTF-8
validation off, one SSLContext for the whole process (trusting `SSL_CERT_FILE`),
no retries, no proxy logic, no error mapping. ChatHub: GET create, handshake,
invocation, read to the type-2 record. Copilot: POST /c/api/conversations, wait for
`connected`, send `send`, read to `done`. Runs as `python -m bench.minimal` (jobs.py).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import uuid
from functools import partial
from urllib.parse import quote, urlsplit

import websocket

from . import jobs
from .traffic import direct_answer

RS = "\x1e"
TIMEOUT = 30.0
CONTEXT = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)


def _http(url: str, method: str) -> tuple[http.client.HTTPResponse, bytes]:
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=TIMEOUT, context=CONTEXT
        )
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT)
    conn.request(method, parts.path or "/", body=b"{}" if method == "POST" else None)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def _socket(url: str) -> websocket.WebSocket:
    return websocket.create_connection(
        url,
        timeout=TIMEOUT,
        sslopt={"context": CONTEXT},
        skip_utf8_validation=True,
        enable_multithread=False,
    )


def chathub_turn(
    create_url: str, hub_url: str, prompt: str, out: jobs.TurnResult, first_only: bool
) -> None:
    """One ChatHub turn: cumulative type-1 updates diffed into deltas, until type 2."""
    created, body = _http(create_url, "GET")
    token = created.getheader("X-Sydney-Encryptedconversationsignature") or ""
    conversation = json.loads(body)["conversationId"]
    ws = _socket(f"{hub_url}?sec_access_token={quote(token, safe='')}")
    try:
        ws.send(json.dumps({"protocol": "json", "version": 1}) + RS)
        ws.recv()
        ws.send(json.dumps(_invocation(conversation, prompt)) + RS)
        while not out.finished:
            for part in ws.recv().split(RS):
                if part and _on_chathub(json.loads(part), out) and first_only:
                    return
    finally:
        ws.close()


def _on_chathub(record: dict, out: jobs.TurnResult) -> bool:
    """Apply one record; True when it carried new answer text."""
    if record.get("type") == 2:
        out.finished = True
        return False
    if record.get("type") != 1:
        return False
    for message in record["arguments"][0].get("messages", ()):
        text = message.get("text", "")
        if "messageType" in message or not text.startswith(out.text):
            continue
        if len(text) > len(out.text):
            out.text = text
            out.delta_times.append(time.monotonic())
            return True
    return False


def _invocation(conversation: str, prompt: str) -> dict:
    message = {"author": "user", "text": prompt, "messageType": "Chat"}
    argument = {
        "source": "cib",
        "optionsSets": ["deepleo", "galileo"],
        "isStartOfSession": True,
        "conversationId": conversation,
        "participant": {"id": "1"},
        "message": {**message, "requestId": "bench", "messageId": "bench"},
    }
    return {"arguments": [argument], "invocationId": "0", "target": "chat", "type": 4}


def copilot_turn(
    base_url: str, prompt: str, out: jobs.TurnResult, first_only: bool
) -> None:
    """One Copilot turn: appendText events until done."""
    _, body = _http(base_url + "/c/api/conversations", "POST")
    conversation = json.loads(body)["id"]
    ws_base = "ws" + base_url[len("http") :]
    ws = _socket(f"{ws_base}/c/api/chat?api-version=2&clientSessionId={uuid.uuid4()}")
    try:
        while json.loads(ws.recv()).get("event") != "connected":
            pass
        content = [{"type": "text", "text": prompt}]
        send = {
            "event": "send",
            "conversationId": conversation,
            "mode": "chat",
            "content": content,
        }
        ws.send(json.dumps(send))
        while not out.finished:
            event = json.loads(ws.recv())
            if event.get("event") == "appendText" and event.get("text"):
                out.text += event["text"]
                out.delta_times.append(time.monotonic())
                if first_only:
                    return
            out.finished = event.get("event") == "done"
    finally:
        ws.close()


def make_reader(job: dict) -> jobs.Reader:
    """A reader for the job's protocol; failures are counted, never raised."""
    env = os.environ
    protocol = env.get("BINGO_UPSTREAM", "chathub")  # what the gateway speaks (services.upstream_env)

    def read(prompt: str, first_only: bool) -> jobs.TurnResult:
        out = jobs.TurnResult(prompt, started=time.monotonic(), utf8_skipped=True)
        try:
            if protocol == "copilot":
                copilot_turn(env["BINGO_COPILOT_URL"], prompt, out, first_only)
            else:
                chathub_turn(
                    env["BINGO_CREATE_URL"],
                    env["BINGO_CHATHUB_URL"],
                    prompt,
                    out,
                    first_only,
                )
        except Exception as exc:  # noqa: BLE001  # counted, not fatal
            out.error = f"{type(exc).__name__}: {exc}"
        out.ended = time.monotonic()
        return out

    return read


def describe() -> str:
    return (
        "http.client create + websocket-client "
        f"{websocket.__version__} create_connection(skip_utf8_validation=True, "
        "enable_multithread=False), one SSLContext per process"
    )


if __name__ == "__main__":
    jobs.serve(make_reader, partial(direct_answer, protocol=os.environ.get("BINGO_UPSTREAM", "chathub")))
