"""Figures 1 and 5: time to first token at concurrency 1, first byte when Bing is slow.

First-token rounds rotate which side goes first, so drift on a shared machine lands
on all three; each side hangs up at its first token. Times are in milliseconds.
"""

from __future__ import annotations

from . import load
from .harness import Harness
from .response import StreamResult
from .stats import difference, summary
from .traffic import prompt_for

HEROKU_FIRST_BYTE_SECONDS = 30.0


def first_token(h: Harness, rounds: int) -> dict:
    """Each side's first token at c=1; added = gateway minus each baseline."""
    names = list(h.sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    errors: list[str] = []
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            prompt = prompt_for(f"ttft-{h.scheme}-{name}-{round_}", h.options)
            ms, error = h.sides[name].first_ms(prompt)
            if ms is None:
                errors.append(f"{name}: {error}")
            else:
                times[name].append(ms)
    h.settle()
    ms = {name: summary(values) for name, values in times.items()}
    return {
        "rounds": rounds,
        "ms": ms,
        "added_p50_ms": {
            base: difference(ms["gateway"]["p50"], ms[base]["p50"])
            for base in names[1:]
        },
        "added_p99_ms": {
            base: difference(ms["gateway"]["p99"], ms[base]["p99"])
            for base in names[1:]
        },
        "errors": errors,
    }


def _has_first_byte(result: StreamResult) -> bool:
    return result.role_at is not None


def slow_first_byte(h: Harness) -> dict:
    """Headers plus the role chunk while the upstream is silent for `slow_first` s."""
    seconds = h.options.slow_first
    prompt = prompt_for("slow-first", h.options, slow_first=seconds)
    [stream] = load.run_streams(
        h.gateway.port, [prompt], h.options.stream_timeout, _has_first_byte
    )
    h.settle()
    first_byte = None if stream.role_at is None else stream.role_at - stream.started
    return {
        "upstream_silent_s": seconds,
        "keepalive_s": h.options.keepalive or 15.0,
        "status": stream.status,
        "first_byte_s": first_byte,
        "heroku_limit_s": HEROKU_FIRST_BYTE_SECONDS,
        "errors": [stream.error] if stream.error else [],
    }
