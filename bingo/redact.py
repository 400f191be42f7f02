"""Credentials out of text bound for a log: URL parameters, cookies, Bearer tokens.

Pure and dependency-free, so gunicorn's master (its logger) can use it without
loading the app.
"""
from __future__ import annotations

import re

_SECRETS = re.compile(
    r"((?:access_?token|accesstoken|sec_access_token|api[-_]?key|key|token|signature)=)[^&\s'\"]+"
    r"|((?:set-)?cookie['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+"
    r"|(bearer\s+)[\w.~+/=-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with cookie, token and key values replaced by `***`."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", text)
