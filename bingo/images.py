"""Image input: image parts of a request, and the checked images that go upstream.

Chat's `image_url` parts and the Responses API's `input_image` parts become an
ImageRef (where the image is, and the param that names the part). Only the last
user message's images are sent: Copilot gets a fresh conversation per request, so
earlier turns travel as a text transcript, where each earlier image is an
"[image]" marker; those are never decoded or fetched. The sent ones are read
(`data:` URLs decoded here, http(s) URLs through a fetch function the caller passes:
image_fetch.py, and only with BINGO_FETCH_IMAGES=1), capped, and recognised by
their first bytes, never by the type the client declared. Pure: no sockets here.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote_to_bytes, urlsplit

from .errors import InvalidRequest

MAX_IMAGES = 4  # per request: issue #12, and the Go proxy applies the same (note 3.11)
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MARKER = "[image]"
_DETAILS = ("auto", "low", "high")
_SCHEMES = ("data", "http", "https")
# (first bytes, offset) -> type. WebP is a RIFF container: "RIFF", a size, "WEBP".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
)
FORMATS = "PNG, JPEG, GIF or WebP"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image part as the client sent it."""

    url: str = field(repr=False)  # a data: URL may be megabytes; an http URL may carry a key
    param: str  # the part, as a 400 names it: messages[1].content[0]


@dataclass(frozen=True, slots=True)
class Image:
    """An image ready to upload: its bytes and the type they say they are."""

    data: bytes = field(repr=False)
    mime: str
    param: str


class FetchFailed(Exception):
    """An image URL could not be fetched; `reason` says why, for the client's 400."""

    def __init__(self, reason: str, *, code: str = "invalid_image_url") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


Fetch = Callable[[str], bytes]  # an http(s) URL -> its bytes; raises FetchFailed


class HasImages(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def images(self) -> tuple[ImageRef, ...]: ...


def parse_chat_part(part: dict, param: str) -> ImageRef:
    """An `image_url` part: {"image_url": {"url": ..., "detail"?: ...}} or {"image_url": "<url>"}."""
    value = part.get("image_url")
    if isinstance(value, dict):
        _check_detail(value.get("detail"), f"{param}.image_url.detail")
        value = value.get("url")
    if not isinstance(value, str):
        raise InvalidRequest(
            f"'{param}.image_url' must be an object like {{\"url\": \"data:image/png;base64,...\"}}.",
            param=f"{param}.image_url",
        )
    return _ref(value, param)


def parse_responses_part(part: dict, param: str) -> ImageRef:
    """An `input_image` part: {"image_url": "<url>", "detail"?: ...}; file ids are not kept here."""
    _check_detail(part.get("detail"), f"{param}.detail")
    value = part.get("image_url")
    if not isinstance(value, str):
        raise InvalidRequest(
            f"'{param}.image_url' must be a string: a data: URL (data:image/png;base64,...) or an "
            "http(s) URL. This gateway keeps no files, so file_id is not supported.",
            param=f"{param}.image_url",
        )
    return _ref(value, param)


def _check_detail(value: object, param: str) -> None:
    if value is not None and value not in _DETAILS:
        raise InvalidRequest(f"'{param}' must be one of {', '.join(_DETAILS)}.", param=param)


def _ref(url: str, param: str) -> ImageRef:
    if urlsplit(url.strip()).scheme.lower() not in _SCHEMES:
        raise InvalidRequest(
            f"'{param}' must carry its image as a data: URL (data:image/png;base64,...) or an http(s) URL.",
            param=param,
        )
    return ImageRef(url.strip(), param)


def sent(messages: Sequence[HasImages]) -> tuple[ImageRef, ...]:
    """The images that go upstream: the last user message's (see the module docstring)."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    return () if last_user is None else messages[last_user].images


def markers(count: int) -> str:
    """What stands in the transcript for an earlier message's images."""
    return "\n".join([MARKER] * count)


def load(messages: Sequence[HasImages], upstream: str, fetch: Fetch | None) -> tuple[Image, ...]:
    """The sent images, read and checked; () when the last user message has none.

    `fetch` reads http(s) URLs; None means BINGO_FETCH_IMAGES is off. Raises
    InvalidRequest naming the part: more than MAX_IMAGES, an upstream that takes no
    images, a URL that may not or could not be fetched, more than MAX_IMAGE_BYTES,
    or bytes that are not an image of a supported format.
    """
    refs = sent(messages)
    if not refs:
        return ()
    if len(refs) > MAX_IMAGES:
        raise InvalidRequest(
            f"'{refs[MAX_IMAGES].param}' is image {MAX_IMAGES + 1} of the last user message; "
            f"at most {MAX_IMAGES} images go with one request. Send fewer images.",
            param=refs[MAX_IMAGES].param, code="too_many_images",
        )
    if upstream != "copilot":
        raise InvalidRequest(
            f"'{refs[0].param}' is an image, and the Bing ChatHub upstream (BINGO_UPSTREAM=chathub) does "
            "not take images. Ask a Copilot model (\"copilot\"), with a signed-in account.",
            param=refs[0].param,
        )
    return tuple(_checked(ref, _read(ref, fetch)) for ref in refs)


def _read(ref: ImageRef, fetch: Fetch | None) -> bytes:
    if ref.url[:5].lower() == "data:":
        return decode_data_url(ref)
    if fetch is None:
        raise InvalidRequest(
            f"'{ref.param}' is an http(s) URL, and this gateway fetches image URLs only when "
            "BINGO_FETCH_IMAGES=1. Send the image inline as a data: URL (data:image/png;base64,...).",
            param=ref.param, code="invalid_image_url",
        )
    try:
        return fetch(ref.url)
    except FetchFailed as exc:
        raise InvalidRequest(
            f"'{ref.param}': the image at {_site(ref.url)} could not be fetched: {exc.reason}.",
            param=ref.param, code=exc.code,
        ) from None


def decode_data_url(ref: ImageRef) -> bytes:
    """The bytes of a data: URL (base64 or percent-encoded), refused early when too big."""
    head, comma, payload = ref.url[5:].partition(",")
    if not comma:
        raise InvalidRequest(f"'{ref.param}' is a data: URL without a ',' before its data.", param=ref.param)
    if head.lower().endswith(";base64"):
        payload = "".join(payload.split())  # line breaks some encoders add
        _check_size(ref, len(payload) * 3 // 4 - 2)  # at most 2 bytes of padding
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"'{ref.param}' is a data: URL whose base64 data does not decode.", param=ref.param) from None
    _check_size(ref, len(payload) // 3)  # %XX is three characters a byte at most
    return unquote_to_bytes(payload)


def _checked(ref: ImageRef, data: bytes) -> Image:
    _check_size(ref, len(data))
    mime = sniff(data)
    if mime is None:
        raise InvalidRequest(
            f"'{ref.param}' is not an image this gateway can send: its bytes are not {FORMATS} "
            "(the type is read from the data, not from what the URL declares).",
            param=ref.param, code="invalid_image_format",
        )
    return Image(data, mime, ref.param)


def _check_size(ref: ImageRef, size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            f"'{ref.param}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB, the most one image may be. "
            "Send a smaller image.",
            param=ref.param, code="image_too_large",
        )


def sniff(data: bytes) -> str | None:
    """The image type its first bytes say (PNG, JPEG, GIF, WebP), or None."""
    for signature, offset, mime in _SIGNATURES:
        if data[offset:offset + len(signature)] == signature and (offset == 0 or data[:4] == b"RIFF"):
            return mime
    return None


def _site(url: str) -> str:
    """Where an image URL points, for a message: scheme and host only (a query may hold a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}"
