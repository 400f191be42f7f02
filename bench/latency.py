"""Figures 1 and 5: time to first token at concurrency 1, first byte when Bing is slow.

First-token rounds alternate the side that goes first, so drift on a shared machine
lands on both; each side hangs up at its first token. Times are in milliseconds.
"""

from __future__ import annotations

from .harness import Harness
from .response import StreamResult
from .stats import difference, summary
from .traffic import prompt_for

HEROKU_FIRST_BYTE_SECONDS = 30.0


def _has_token(result: StreamResult) -> bool:
    return bool(result.content_times)


def _has_first_byte(result: StreamResult) -> bool:
    return result.role_at is not None


def first_token(h: Harness) -> dict:
    """Added time to first token: gateway's first content chunk minus the first Delta."""
    gateway_ms: list[float] = []
    direct_ms: list[float] = []
    errors: list[str] = []
    for round_ in range(h.options.ttft_rounds):
        sides = ("direct", "gateway") if round_ % 2 == 0 else ("gateway", "direct")
        for side in sides:
            prompt = prompt_for(f"ttft-{side}-{round_}", h.options)
            if side == "direct":
                turn = h.direct_first_token(prompt)
                if not turn.delta_times:
                    errors.append(f"direct: {turn.error}")
                else:
                    direct_ms.append((turn.delta_times[0] - turn.started) * 1000)
            else:
                [stream] = h.gateway_streams([prompt], stop_when=_has_token)
                if stream.first_content_at is None or stream.error:
                    errors.append(f"gateway: {stream.error}")
                else:
                    gateway_ms.append((stream.first_content_at - stream.started) * 1000)
    h.settle()
    gateway, baseline = summary(gateway_ms), summary(direct_ms)
    return {
        "rounds": h.options.ttft_rounds,
        "gateway_ms": gateway,
        "direct_ms": baseline,
        "added_p50_ms": difference(gateway["p50"], baseline["p50"]),
        "added_p99_ms": difference(gateway["p99"], baseline["p99"]),
        "errors": errors,
    }


def slow_first_byte(h: Harness) -> dict:
    """Headers plus the role chunk while the upstream is silent for `slow_first` s."""
    seconds = h.options.slow_first
    prompt = prompt_for("slow-first", h.options, slow_first=seconds)
    [stream] = h.gateway_streams([prompt], stop_when=_has_first_byte)
    h.settle()
    first_byte = None if stream.role_at is None else stream.role_at - stream.started
    headers = None if stream.headers_at is None else stream.headers_at - stream.started
    return {
        "upstream_silent_s": seconds,
        "keepalive_s": h.settings.keepalive_seconds,
        "status": stream.status,
        "headers_s": headers,
        "first_byte_s": first_byte,
        "before_upstream_s": difference(
            first_byte, seconds
        ),  # negative: gateway spoke first
        "heroku_limit_s": HEROKU_FIRST_BYTE_SECONDS,
        "errors": [stream.error] if stream.error else [],
    }
