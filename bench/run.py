"""One benchmark run: start everything, measure the five figures in order, stop.

Order matters only for memory: idle RSS is read after a warm-up and before any
concurrency, and every phase waits for the sandbox to close its sockets.
"""

from __future__ import annotations

import time

from . import capacity, latency, machine, procstat
from .direct import describe
from .harness import Harness, running
from .options import Options
from .traffic import MODEL, prompt_for

DEFAULT_THREADS = 256  # gunicorn.conf.py: threads = BINGO_THREADS or 256


def _warm_up(h: Harness) -> dict:
    """Both sides answer a few times first (imports, pools, lazily built tables)."""
    count = h.options.warmup
    streams = [
        s
        for i in range(count)
        for s in h.gateway_streams([prompt_for(f"warm-gateway-{i}", h.options)])
    ]
    turns = h.direct_waves(
        [prompt_for(f"warm-direct-{i}", h.options) for i in range(count)], 1
    )["results"]
    h.settle()
    return {
        "gateway_errors": [s.error for s in streams if s.error],
        "direct_errors": [t["error"] or "inexact" for t in turns if not t["intact"]],
        "utf8_validation_skipped": all(t["utf8_skipped"] for t in turns),
    }


def run(options: Options) -> dict:
    """Measure everything; returns the JSON-ready result (figures are in report)."""
    started = time.monotonic()
    with running(options) as h:
        warm = _warm_up(h)
        idle = h.worker_status()
        memory = {
            "worker_boot_rss_kb": h.boot_rss_kb,
            "worker_idle_rss_kb": idle["rss_kb"],
            "worker_idle_threads": idle["threads"],
            "master_rss_kb": procstat.status(h.gateway.master_pid)["rss_kb"],
            # RSS counts pages the forked worker shares with the master twice; PSS does not.
            "master_plus_worker_pss_kb": procstat.pss_kb(h.gateway.master_pid)
            + procstat.pss_kb(h.gateway.worker_pid),
        }
        first = latency.first_token(h)
        cpu = capacity.cpu_per_answer(h)
        streams = capacity.ramp(h)
        slow = latency.slow_first_byte(h)
        log = h.gateway.log_text()
        command = " ".join(h.gateway.command)
    return {
        "machine": machine.describe(),
        "options": {
            k: (str(v) if k == "json_path" else v) for k, v in vars(options).items()
        },
        "gateway": {
            "command": command,
            "workers": 1,
            "threads": int(
                dict(options.gateway_env).get("BINGO_THREADS", DEFAULT_THREADS)
            ),
            "keepalive_s": h.settings.keepalive_seconds,
            "extra_env": dict(options.gateway_env),
            "log_tracebacks": log.count("Traceback"),
        },
        "baseline": describe(h.settings),
        "placement": h.placement.describe(),
        "traffic": {
            "model": MODEL,
            "chars": options.chars,
            "updates": options.updates,
            "delay_s": options.delay,
            "search_progress_and_cards": True,
        },
        "warmup": warm,
        "first_token": first,
        "cpu": cpu,
        "concurrency": streams,
        "memory": memory,
        "slow_first": slow,
        "seconds": time.monotonic() - started,
    }
