"""One benchmark run: for each scheme (plain ws://, then TLS wss://) start everything,
measure the figures in order, stop; then the slow-upstream figure once.

Order matters only for memory: idle RSS is read once, after a warm-up and before any
concurrency, and that same figure is what every KB-per-stream is measured from.
"""

from __future__ import annotations

import time

from . import capacity, latency, machine
from .certs import make_certs
from .direct import describe
from .harness import Harness, running
from .minimal import describe as describe_minimal
from .options import Options
from .traffic import MODEL, prompt_for


def _warm_up(h: Harness) -> dict:
    """Every side answers a few times first (imports, pools, lazily built tables)."""
    found: dict[str, list[str]] = {}
    utf8 = None
    for name, side in h.sides.items():
        count = h.options.warmup
        prompts = [
            prompt_for(f"warm-{h.scheme}-{name}-{i}", h.options) for i in range(count)
        ]
        records = side.waves(prompts, count, 0.0).records
        found[name] = [r["error"] or "inexact" for r in records if not r["intact"]]
        if name == "direct":
            utf8 = all(r.get("utf8_skipped") for r in records)
    h.settle()
    return {"errors": found, "direct_utf8_validation_skipped": utf8}


def _pinned(h: Harness) -> dict:
    """First token and CPU again with the gateway and readers on a core of their own."""
    options = h.options
    with h.pinned() as placement:
        first = latency.first_token(h, options.pinned_rounds)
        cpu = capacity.cpu_per_answer(
            h,
            options.pinned_answers,
            min(options.cpu_concurrency, options.pinned_answers),
        )
    return {"placement": placement.describe(), "first_token": first, "cpu": cpu}


def measure(h: Harness, slow: bool) -> dict:
    """Every figure for one scheme, unpinned (the headline), then pinned (a detail)."""
    options = h.options
    warm = _warm_up(h)
    idle = h.memory()
    result = {
        "warmup": warm,
        "memory_idle": idle,
        "first_token": latency.first_token(h, options.ttft_rounds),
        # The CPU target is sequential answers; 20 at once is shown beside it.
        "cpu": capacity.cpu_per_answer(h, options.cpu_sequential, 1, options.cpu_sequential_wave),
        "cpu_concurrent": capacity.cpu_per_answer(h, options.cpu_answers, options.cpu_concurrency),
        "concurrency": capacity.ramp(h, idle["worker_rss_kb"]),
        "pinned": _pinned(h) if options.pinned else None,
        "slow_first": latency.slow_first_byte(h) if slow else None,
        "log_tracebacks": h.gateway.log_text().count("Traceback"),
        "gateway_command": " ".join(h.gateway.command),
    }
    return result


def run(options: Options) -> dict:
    """Measure everything; returns the JSON-ready result (figures are in report)."""
    started = time.monotonic()
    certs = make_certs(options.json_path.parent / "tls")
    schemes = {}
    for scheme in options.schemes:
        with running(options, scheme, certs if scheme == "wss" else None) as h:
            schemes[scheme] = measure(h, slow=scheme == options.schemes[-1])
            baseline = describe(h.env)
    return {
        "machine": machine.describe(),
        "options": {
            k: (str(v) if k == "json_path" else v) for k, v in vars(options).items()
        },
        "gateway": {
            "workers": 1,
            "threads": int(dict(options.gateway_env).get("BINGO_THREADS", 256)),
            "extra_env": dict(options.gateway_env),
            "tls_env": "SSL_CERT_FILE, REQUESTS_CA_BUNDLE: certifi bundle + test CA",
        },
        "baselines": {"direct": baseline, "minimal": describe_minimal()},
        "traffic": {
            "model": MODEL,
            "protocol": options.protocol,
            "chars": options.chars,
            "updates": options.updates,
            "delay_s": options.delay,
            "search_progress_and_cards": True,
        },
        "schemes": schemes,
        "seconds": time.monotonic() - started,
    }
