"""`python -m bench --pool`: what the shared state costs a request, in memory and in Redis.

Store level: the operations one request makes on an account (read its standing,
take a slot, give it back; plus one `hit_key` with BINGO_KEY_RPM) timed against the
in-process store and against a real redis-server on loopback, in the same run, with
Redis's bare round trip (PING) as the floor. Round trips are counted twice: by the
store's own counter over every request, and by Redis's MONITOR for one request.
End to end (`pool_e2e.py`): the Procfile command, one process in memory beside two
processes (WEB_CONCURRENCY=2) sharing Redis.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bingo.state import StateStore
from bingo.state.memory import MemoryStore
from bingo.state.redis_store import RedisStore, connect
from tests.redis_server import running_redis

from .options import Options
from .pool_e2e import run_e2e
from .stats import difference, ratio, summary

ACCOUNTS = tuple(f"account-{n}" for n in range(1, 5))  # 4 accounts, requests spread over them
ROOMY = 1_000_000  # concurrency and rpm high enough that no take is refused here
THREADS = 8


def request_ops(store: StateStore, n: int, key_limit: bool = False) -> None:
    """What request `n` asks of the store: standing, slot, (key budget,) release."""
    account = ACCOUNTS[n % len(ACCOUNTS)]
    if key_limit:
        store.hit_key("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", ROOMY)
    store.health(account)
    lease = store.take_slot(account, ROOMY, ROOMY, 30.0).lease
    if lease is None:
        raise RuntimeError("the benchmark's take_slot was refused; ROOMY is too small")
    store.release(account, lease)


def interleaved(operations: dict[str, Callable[[int], object]], count: int) -> dict[str, list[float]]:
    """Microseconds per call of each operation, taking turns call by call, so a
    busy moment on the machine falls on every operation alike. An operation that
    returns an Elapsed has timed itself (it had untimed work to do first)."""
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for n in range(count):
        for name, operation in operations.items():
            started = time.perf_counter_ns()
            timed_itself = operation(n)
            took = (time.perf_counter_ns() - started) / 1000
            samples[name].append(timed_itself if isinstance(timed_itself, Elapsed) else took)
    return samples


def threaded(operation: Callable[[int], object], count: int) -> tuple[list[float], float]:
    """`count` calls over THREADS threads: each call's microseconds, and the wall seconds."""
    samples: list[list[float]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS + 1)

    def work(index: int) -> None:
        start.wait(timeout=30)
        samples[index] = interleaved({"op": lambda n: operation(index * count + n)}, count // THREADS)["op"]

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait(timeout=30)
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=300)
    return [s for part in samples for s in part], time.perf_counter() - began


class Elapsed(float):
    """Microseconds an operation measured itself."""


def take_alone(store: StateStore) -> Callable[[int], Elapsed]:
    """A timed take on an account whose previous lease is given back first, untimed."""
    held: list[str] = []

    def take(n: int) -> Elapsed:
        if held:
            store.release(ACCOUNTS[0], held.pop())
        started = time.perf_counter_ns()
        held.append(store.take_slot(ACCOUNTS[0], ROOMY, ROOMY, 30.0).lease or "")
        return Elapsed((time.perf_counter_ns() - started) / 1000)

    return take


def ops_p50(stores: dict[str, StateStore], count: int) -> dict[str, dict[str, float | None]]:
    """Each operation alone, stores taking turns: p50 microseconds per store."""
    figures: dict[str, dict[str, float | None]] = {name: {} for name in stores}
    operations: dict[str, Callable[[StateStore], Callable[[int], object]]] = {
        "ping": lambda store: lambda n: store.ping(),  # Redis: the bare round trip, the floor
        "health": lambda store: lambda n: store.health(ACCOUNTS[0]),
        "release": lambda store: lambda n: store.release(ACCOUNTS[1], "gone"),
        "take_slot": take_alone,
        "hit_key": lambda store: lambda n: store.hit_key("bench-key", ROOMY),
    }
    for op, make in operations.items():
        samples = interleaved({name: make(store) for name, store in stores.items()}, count)
        for name in stores:
            figures[name][op] = summary(samples[name])["p50"]
    return figures


def measure(stores: dict[str, StateStore], count: int) -> dict[str, Any]:
    """Both stores' figures, taking turns: request latency, calls per request, threads."""
    for store in stores.values():
        for n in range(50):
            request_ops(store, n, key_limit=True)  # warm: connections made, scripts loaded
    ops = ops_p50(stores, count)
    calls = {name: store.calls for name, store in stores.items()}
    serial = interleaved({name: partial(request_ops, store) for name, store in stores.items()}, count)
    per_request = {name: (store.calls - calls[name]) / count for name, store in stores.items()}
    with_key = interleaved({name: partial(request_ops, store, key_limit=True) for name, store in stores.items()},
                           count)
    concurrent: dict[str, list[float]] = {name: [] for name in stores}
    walls = dict.fromkeys(stores, 0.0)
    for _ in range(10):  # the stores take turns, a tenth of the calls at a time
        for name, store in stores.items():
            samples, wall = threaded(partial(request_ops, store), count // 10)
            concurrent[name] += samples
            walls[name] += wall
    return {name: {
        "ops_p50_us": ops[name], "serial_us": summary(serial[name]), "with_key_limit_us": summary(with_key[name]),
        "threads": THREADS, "threaded_us": summary(concurrent[name]),
        "threaded_requests_per_s": len(concurrent[name]) / walls[name], "calls_per_request": per_request[name],
    } for name in stores}


def run_store(options: Options) -> dict[str, Any]:
    """Memory and Redis store figures side by side, plus the bare Redis round trip."""
    count = 200 if options.quick else 5_000
    with running_redis() as server:
        store = connect(server.url)
        figures = measure({"memory": MemoryStore(), "redis": store}, count)
        commands = server.commands_during(lambda: request_ops(store, 0))
        commands_with_key = server.commands_during(lambda: request_ops(store, 0, key_limit=True))
        _close(store)
    memory, redis = figures["memory"], figures["redis"]
    floor = redis["ops_p50_us"]["ping"]
    return {
        "count": count,
        "memory": memory,
        "redis": redis,
        "redis_ping_p50_us": floor,
        "redis_commands_per_request": commands,
        "redis_commands_with_key_limit": commands_with_key,
        "added_p50_us": difference(redis["serial_us"]["p50"], memory["serial_us"]["p50"]),
        "added_p50_with_key_limit_us": difference(redis["with_key_limit_us"]["p50"],
                                                   memory["with_key_limit_us"]["p50"]),
        "redis_over_memory_p50": ratio(redis["serial_us"]["p50"], memory["serial_us"]["p50"]),
        "redis_over_round_trip_floor": ratio(redis["serial_us"]["p50"],
                                             None if floor is None else floor * len(commands)),
    }


def _close(store: RedisStore) -> None:
    store.client.close()


def run(options: Options) -> dict[str, Any]:
    """The whole `--pool` section: store level, then end to end."""
    out_dir = options.json_path.parent
    return {"store": run_store(options), "e2e": run_e2e(options, out_dir), "quick": options.quick}


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def render(result: dict[str, Any]) -> str:
    """The figures as the Markdown tables bench/RESULTS.md records."""
    return _render_store(result["store"]) + "\n" + _render_e2e(result["e2e"])


def _render_store(store: dict[str, Any]) -> str:
    memory, redis = store["memory"], store["redis"]
    ops = memory["ops_p50_us"]
    rows = [
        "| store operations of one request (standing, take, release) | memory | Redis | Redis - memory | Redis / memory |",
        "|---|---|---|---|---|",
        _row("p50, one at a time (us)", memory["serial_us"]["p50"], redis["serial_us"]["p50"]),
        _row("p99, one at a time (us)", memory["serial_us"]["p99"], redis["serial_us"]["p99"]),
        _row("p50 with BINGO_KEY_RPM (us)", memory["with_key_limit_us"]["p50"], redis["with_key_limit_us"]["p50"]),
        _row(f"p50, {THREADS} threads (us)", memory["threaded_us"]["p50"], redis["threaded_us"]["p50"]),
        _row(f"requests/s, {THREADS} threads", memory["threaded_requests_per_s"], redis["threaded_requests_per_s"]),
        _row("store calls per request", memory["calls_per_request"], redis["calls_per_request"]),
        *(_row(f"`{op}` alone, p50 (us)", ops[op], redis["ops_p50_us"][op]) for op in ops),
        "",
        (f"Redis round trip floor (PING p50): {store['redis_ping_p50_us']:.0f} us; one request sent "
         f"{' + '.join(store['redis_commands_per_request'])} (MONITOR), "
         f"{' + '.join(store['redis_commands_with_key_limit'])} with BINGO_KEY_RPM; "
         f"Redis request / its round trips' floor: {store['redis_over_round_trip_floor']:.2f}x."),
    ]
    return "\n".join(rows) + "\n"


def _render_e2e(e2e: dict[str, Any]) -> str:
    rows = [
        (f"| one-shot chat through gunicorn ({e2e['rounds']} rounds) | p50 ms | p99 ms | "
         f"p50 ms, {e2e['configs'][next(iter(e2e['configs']))]['concurrency']} at once | requests/s | "
         "Redis commands per request |"),
        "|---|---|---|---|---|---|",
    ]
    for name, figures in e2e["configs"].items():
        commands = figures["redis_commands_per_request"]
        rows.append(f"| {name} | {figures['serial_ms']['p50']:.2f} | {figures['serial_ms']['p99']:.2f} | "
                    f"{figures['concurrent_ms']['p50']:.2f} | {figures['requests_per_s']:.0f} | "
                    f"{'-' if commands is None else f'{commands:.2f}'} |")
    rows.append("")
    for name, pair in e2e["added"].items():
        rows.append(f"- {name} against {pair['against']}: {pair['added_p50_ms']:+.2f} ms at p50 "
                    f"({pair['p50_ratio']:.2f}x), throughput {pair['throughput_ratio']:.2f}x")
    if not e2e["has_pool"]:
        rows.append("- no account pool in this code (bingo/accounts/pool.py): store-level figures only for it")
    return "\n".join(rows) + "\n"


def _row(name: str, memory: float | None, redis: float | None) -> str:
    cells = [memory, redis, difference(redis, memory), ratio(redis, memory)]
    return f"| {name} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |"
