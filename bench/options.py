"""What one benchmark run does: traffic shape, repetitions, concurrency ramp, outputs.

The defaults finish in about fifteen minutes on a 2-core machine (plain and TLS, each
unpinned and pinned; the sequential CPU figure alone is 36 five-second answers per
scheme); `--quick` is a smoke run of every phase with tiny counts.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Options:
    """One run's knobs; every count and wait here is a bound, not a hope."""

    chars: int = 2000  # answer length (the sandbox pads the echo to this)
    updates: int = 100  # cumulative updates per answer
    delay: float = 0.05  # seconds the upstream waits before each update
    schemes: tuple[str, ...] = ("ws", "wss")  # plain, then TLS (test CA)
    protocol: str = "chathub"  # what the sandbox's clients speak: BINGO_UPSTREAM for all three sides
    warmup: int = 2  # answers per side before anything is measured
    ttft_rounds: int = 100  # concurrency-1 first-token rounds per side
    cpu_sequential: int = 12  # answers per side one at a time: the "sequential" CPU figure
    cpu_sequential_wave: int = 4  # of them per turn of the rotation
    cpu_answers: int = 80  # answers per side for the CPU figure at cpu_concurrency
    cpu_concurrency: int = 20  # streams at once in that phase (one wave)
    ramp: tuple[int, ...] = (50, 200)  # concurrent streams per step
    spread: float = 1.0  # a step's streams start evenly over this many seconds
    target_n: int = 200  # the N the targets are judged at
    pinned: bool = True  # also measure TTFT and CPU pinned (a detail; see cpus.py)
    pinned_rounds: int = 60  # first-token rounds per side, pinned
    pinned_answers: int = 60  # answers per side for the pinned CPU figure
    slow_first: float = 35.0  # upstream silence before its first frame (figure 5)
    keepalive: float | None = None  # BINGO_KEEPALIVE_SECONDS; None: gateway default
    stream_timeout: float = 120.0  # one step's streams must all end within this
    gateway_env: tuple[tuple[str, str], ...] = ()  # extra environment for gunicorn
    json_path: Path = OUT_DIR / "bench.json"
    quick: bool = False
    peers: bool = False  # --peers: only the comparison with gpt4free (peers.py)
    peers_rounds: int = 30  # first-token rounds per server at c=1
    peers_answers: int = 30  # whole answers per server for the CPU figure
    peers_wave: int = 10  # of them at once
    peers_n: int = 50  # concurrent streams per server
    pool: bool = False  # --pool: only the shared-state figures (pool.py)


QUICK = Options(
    chars=800,
    updates=40,
    delay=0.005,
    warmup=1,
    ttft_rounds=3,
    cpu_sequential=2,
    cpu_sequential_wave=1,
    cpu_answers=2,
    cpu_concurrency=2,
    ramp=(4, 8),
    spread=0.04,
    target_n=8,
    pinned_rounds=2,
    pinned_answers=1,
    slow_first=2.0,
    keepalive=1.0,
    stream_timeout=30.0,
    json_path=OUT_DIR / "bench-quick.json",
    quick=True,
)


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line; --quick picks the smoke profile first."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny N, few repetitions (< 15 s)"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the JSON (default bench/out/)"
    )
    parser.add_argument(
        "--ramp", help="comma-separated concurrency steps, e.g. 50,100,200,300"
    )
    parser.add_argument("--target-n", type=int, help="the N the targets are judged at")
    parser.add_argument(
        "--delay", type=float, help="seconds before each upstream update"
    )
    parser.add_argument("--ttft-rounds", type=int, help="first-token rounds per side")
    parser.add_argument(
        "--cpu-answers", type=int, help="answers per side for the CPU figure 20 at once"
    )
    parser.add_argument(
        "--cpu-sequential", type=int, help="answers per side for the sequential CPU figure"
    )
    parser.add_argument(
        "--no-pinned", action="store_true", help="skip the pinned detail runs"
    )
    parser.add_argument(
        "--scheme", choices=("ws", "wss"), help="only plain or only TLS"
    )
    parser.add_argument(
        "--protocol",
        choices=("chathub", "copilot"),
        help="what the upstream speaks (default chathub; copilot lifts the account pacing)",
    )

    parser.add_argument(
        "--peers",
        action="store_true",
        help="only bingo beside gpt4free's API server (installs g4f[api] into "
        "bench/.peers-venv the first time; never in CI)",
    )
    parser.add_argument(
        "--pool",
        action="store_true",
        help="only what the shared state costs a request: memory vs Redis (starts redis-server)",
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    args = parser.parse_args(argv)
    options = QUICK if args.quick else Options()
    changes: dict[str, Any] = {}
    if args.json:
        changes["json_path"] = args.json
    if args.no_pinned:
        changes["pinned"] = False
    if args.peers:
        changes["peers"] = True
        changes["json_path"] = args.json or OUT_DIR / "peers.json"
    if args.pool:
        changes["pool"] = True
        changes["json_path"] = args.json or OUT_DIR / ("pool-quick.json" if args.quick else "pool.json")
    if args.scheme:
        changes["schemes"] = (args.scheme,)
    if args.protocol:
        changes["protocol"] = args.protocol

    if args.gateway_env:
        changes["gateway_env"] = tuple(_pair(item) for item in args.gateway_env)
    if args.ramp:
        changes["ramp"] = tuple(
            sorted({_positive(int(n)) for n in args.ramp.split(",")})
        )
    for name in ("target_n", "delay", "ttft_rounds", "cpu_answers", "cpu_sequential"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = _positive(value) if name != "delay" else max(0.0, value)
    options = replace(options, **changes)
    if options.target_n not in options.ramp:
        options = replace(
            options, ramp=tuple(sorted({*options.ramp, options.target_n}))
        )
    return options


def _pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise SystemExit(f"--gateway-env takes NAME=VALUE, not {item!r}")
    return name, value


def _positive(value: int) -> int:
    if value < 1 or value > 2000:
        raise SystemExit(f"counts must be between 1 and 2000, not {value}")
    return value
