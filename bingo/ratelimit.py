"""Per-API-key rate limit (BINGO_KEY_RPM): a sliding minute per key, in the state store.

With REDIS_URL the count is shared by every process, so the limit is per deployment,
not per worker. A key is known only by its SHA-256 (in memory and in Redis key
names). No Flask here: routes.py calls `check` from a before-request hook.
"""
from __future__ import annotations

import hashlib
import math

from .errors import KeyRateLimited
from .state import StateStore


def key_id(api_key: str) -> str:
    """The name a key is counted under: its SHA-256, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def check(store: StateStore, api_key: str, rpm: int) -> None:
    """Count one answer request for `api_key` ("" for keyless clients, who share one
    budget); raises KeyRateLimited past `rpm` in the last minute, counting nothing.

    Raises StateStoreUnavailable when the store cannot be reached: never unlimited."""
    wait = store.hit_key(key_id(api_key), rpm)
    if wait > 0:
        raise KeyRateLimited(rpm, max(1, math.ceil(wait)))
