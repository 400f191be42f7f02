"""The headers every response carries, whoever writes it: Flask or the worker's error pages.

Kept apart from routes.py so that the worker class (which gunicorn's master imports)
can use them without loading Flask and the whole app into the master.
"""
from __future__ import annotations

import secrets

# What a browser client may read from a response (the SDKs read these).
_EXPOSED = "x-request-id, x-should-retry, Retry-After"


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def cors_headers(origin: str) -> dict[str, str]:
    """The CORS headers of every response."""
    headers = {"Access-Control-Expose-Headers": _EXPOSED, "Access-Control-Allow-Origin": origin}
    if origin != "*":
        headers["Vary"] = "Origin"
    return headers
