"""Image input on Copilot: upload each image, then name it in the `send`.

Copilot reads images only from a signed-in account: an upload needs the Bearer
token (CTG 0b23c37 made image analysis work by sending it; g4f uploads only with
one), so a request with images and no token is a 400 before any upstream call.
Each image is uploaded after the conversation exists (before /c/api/start "the
service refuses, there is no binding to a chat yet", foxroute): `POST
/c/api/attachments` with the raw bytes, the type the bytes say, the session's
cookies and the token. The reply's `{"url"}` becomes a `{"type": "image", "url"}`
part, placed before the text in the one `send` (g4f, the Go proxy, foxroute). The
URL goes back exactly as the service gave it: it is often relative, and every public
client (g4f, the Go proxy's tests) hands it on unresolved, for the service to read.
Protocol note copilot-2026 section 3.11.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...config import Settings
from ...errors import InvalidRequest, UpstreamProtocolError
from ...images import Image, ImageRef
from ..failures import ATTACHMENT_STATUSES, for_attachment
from ..transport import Reply, http_json

UPLOAD = "Copilot's attachment upload"
SIGN_IN = (
    "COPILOT_ACCESS_TOKEN, COPILOT_REFRESH_TOKEN, or a line with a refresh_token in COPILOT_ACCOUNTS_FILE"
)


def require_sign_in(images: Sequence[Image | ImageRef], access_token: str) -> None:
    """Raises InvalidRequest when there are images to send and no token to send them with
    (the images as read, or as the client named them when nothing is read yet)."""
    if images and not access_token:
        raise InvalidRequest(
            f"'{images[0].param}' is an image, and Copilot takes images only from a signed-in account; "
            f"this gateway has none. Set {SIGN_IN}, or send the request without images.",
            param=images[0].param,
        )


def upload(
    settings: Settings, images: tuple[Image, ...], headers: Mapping[str, str], cookie: str = "",
) -> tuple[dict[str, str], ...]:
    """Upload each image in order; the `send` content parts that name them.

    `headers` are the presentation's REST headers, the account's token included
    (require_sign_in ran first), and `cookie` the session's Cookie header ("" for
    none). Raises the failure table's error for a refused upload (a 400 naming the
    part when the refusal is about the image), and UpstreamProtocolError when the
    reply carries no URL.
    """
    url = f"{settings.copilot_url.rstrip('/')}/c/api/attachments"
    parts = []
    for image in images:
        sent = {**headers, "Content-Type": image.mime}
        if cookie:
            sent["Cookie"] = cookie
        reply = http_json(settings, "copilot", "POST", url, sent, UPLOAD, data=image.data, accept=ATTACHMENT_STATUSES)
        if reply.status in ATTACHMENT_STATUSES:
            raise for_attachment(reply.status, UPLOAD, image.param)
        parts.append({"type": "image", "url": _image_url(reply)})
    return tuple(parts)


def _image_url(reply: Reply) -> str:
    found = reply.body.get("url") if isinstance(reply.body, dict) else None
    if not isinstance(found, str) or not found:
        raise UpstreamProtocolError(f"{UPLOAD} answered HTTP {reply.status} without the image's URL ({{\"url\": ...}}).")
    return found
