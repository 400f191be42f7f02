"""Copilot's `/c/api/attachments` on the sandbox: image uploads, and answers that show them.

As public clients found the service (protocol note copilot-2026, section 3.11): an
upload needs a Bearer token (401 without one, or when `Sandbox.check_tokens` refuses
it; an account's rule applies as on a create) and a conversation started with that
token first (400 before it: there is no chat to bind the image to); the body is the
raw image with its Content-Type; the reply is `{"url"}`, a relative path. A `send`
whose image parts name stored attachments is answered as if the model saw them: the
echoed prompt starts with one line per image (type, size, sha256), so a test proves
which bytes arrived. An image part naming anything else gets a line saying it cannot
be read, as Copilot answers in text when it cannot see an image (CTG vision_failures).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .accounts import credentials
from .create import Reply, json_reply
from .directives import ATTACHMENTS
from .state import State
from .uploads import Attachment, Attachments, digest


def bearer(headers: Mapping[str, str]) -> str:
    """The Bearer token of a request, or ""."""
    value = header(headers, "Authorization")
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value whatever the case of its name, or ""."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def started(attachments: Attachments, headers: Mapping[str, str], reply: Reply) -> Reply:
    """A conversation create's reply, unchanged; a successful one opens its token's session."""
    token = bearer(headers)
    if reply.status == 200 and token:
        attachments.start(token)
    return reply


def upload(state: State, headers: Mapping[str, str], body: bytes) -> Reply:
    """POST /c/api/attachments: the raw image in, `{"url"}` out, unless a queued fault says otherwise."""
    fault = state.faults.take(ATTACHMENTS)
    if fault is not None:
        return _FAULTS[fault[0]]
    attachments = state.attachments
    caller, token = credentials(headers.items())
    if not token:
        return json_reply({"message": "Unauthorized"}, status=401)
    refused = state.accounts.refusal(caller, token)  # the account's rules and token check
    if refused is not None:
        return Reply(refused.status, refused.body, refused.content_type, refused.headers)
    if not attachments.started(token):
        return json_reply({"message": "No conversation to attach to: start one first."}, status=400)
    content_type = header(headers, "Content-Type").split(";")[0].strip().lower()
    if not content_type.startswith("image/") or not body:
        return json_reply({"message": "Unsupported attachment."}, status=415)
    return json_reply({"url": attachments.store(content_type, body).url})


_FAULTS = {
    "attachment-401": json_reply({"message": "Unauthorized"}, status=401),
    "attachment-413": json_reply({"message": "Payload too large"}, status=413),
    "attachment-nourl": json_reply({}),
}


def seen(attachments: Attachments, content: Any, text: str) -> str:
    """What the sandbox's model answers to: a line per image part, then the text."""
    parts = content if isinstance(content, list) else []
    urls = [p.get("url") for p in parts if isinstance(p, dict) and p.get("type") == "image"]
    lines = [describe(n, attachments.get(url), url) for n, url in enumerate(urls, 1)]
    return "\n".join([*lines, text])


def describe(number: int, attachment: Attachment | None, url: object) -> str:
    if attachment is None:
        return f"[image {number}: {url!r} cannot be read]"
    size = len(attachment.data)
    return f"[image {number}: {attachment.content_type}, {size} bytes, sha256 {digest(attachment.data)}]"
