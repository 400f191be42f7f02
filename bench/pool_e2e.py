"""End to end for `python -m bench --pool`: the Procfile command with its state in
memory (one process) beside two processes (WEB_CONCURRENCY=2) sharing Redis.

All gateways run at once against one sandbox and are measured in turns (one request
to each, round after round; then short concurrent bursts in turn), so a noisy
neighbour on the machine hits every configuration alike. Each configuration is
(model, environment, processes): Copilot turns go through the account pool when
the code has one (4 anonymous accounts from COPILOT_ACCOUNTS_FILE, pacing set out
of the way), ChatHub turns never touch the state store unless BINGO_KEY_RPM is on.
Redis commands per request are counted with MONITOR over a sample of requests.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tests.redis_server import RedisServer, running_redis

from .child import ROOT, Managed
from .options import Options
from .services import (
    SandboxProcess,
    free_port,
    procfile_command,
    upstream_env,
    wait_for_port,
    wait_healthy,
)
from .stats import difference, ratio, summary

PROMPT = "pool bench [sandbox:chars=200] [sandbox:updates=4] [sandbox:delay=0]"
CONCURRENCY = 8
SAMPLE = 50  # requests whose Redis commands MONITOR counts
ACCOUNTS = 4
HAS_POOL = (ROOT / "bingo" / "accounts" / "pool.py").exists()
# Pacing out of the way: the figure is the state's cost, not the upstream's limits.
POOL_ENV = {"BINGO_ACCOUNT_CONCURRENCY": "64", "BINGO_ACCOUNT_RPM": "1000000"}


@dataclass(frozen=True)
class Config:
    name: str
    model: str
    env: dict[str, str]
    processes: int
    redis: bool = False


class Gateway(Managed):
    """The Procfile command on a free loopback port with `processes` workers."""

    def __init__(self, config: Config, env: dict[str, str], log_path: Path) -> None:
        self.config = config
        self.port = free_port()
        env = {**env, **config.env, "WEB_CONCURRENCY": str(config.processes),
               "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}"}
        super().__init__(procfile_command(), env, log_path, stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, 20.0)
            wait_healthy(self.port, 20.0)
        except BaseException:
            self.stop()
            raise


class Asker:
    """One keep-alive connection to a gateway; `ask()` times one one-shot request."""

    def __init__(self, port: int, model: str) -> None:
        self.body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}]})
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def ask(self) -> float:
        started = time.perf_counter()
        self.connection.request("POST", "/v1/chat/completions", self.body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"the gateway answered {response.status}: {body[:300]!r}")
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.connection.close()


def burst(gateway: Gateway, count: int) -> tuple[list[float], float]:
    """`count` requests over CONCURRENCY connections: milliseconds each, and the wall time."""
    parts: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        asker = Asker(gateway.port, gateway.config.model)
        try:
            parts[index] = [asker.ask() for _ in range(count // CONCURRENCY)]
        except BaseException as exc:  # noqa: BLE001  # reported after the join
            errors.append(exc)
        finally:
            asker.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CONCURRENCY)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise RuntimeError(f"a load thread failed: {errors[0]}")
    return [s for part in parts for s in part], time.perf_counter() - began


def measure(gateways: list[Gateway], rounds: int, server: RedisServer) -> dict[str, Any]:
    """Serial requests in turns, then bursts in turns; Redis commands from a sample."""
    askers = [Asker(g.port, g.config.model) for g in gateways]
    serial: list[list[float]] = [[] for _ in gateways]
    try:
        for asker in askers:
            for _ in range(20):
                asker.ask()  # warm: first requests, first accounts, first scripts
        for _ in range(rounds):
            for index, asker in enumerate(askers):
                serial[index].append(asker.ask())
        commands = {g.config.name: server.commands_during(partial(_ask_many, a, SAMPLE))
                    for g, a in zip(gateways, askers, strict=True) if g.config.redis}
    finally:
        for asker in askers:
            asker.close()
    concurrent: list[list[float]] = [[] for _ in gateways]
    walls = [0.0 for _ in gateways]
    for _ in range(max(1, rounds // 40)):
        for index, gateway in enumerate(gateways):
            samples, wall = burst(gateway, CONCURRENCY * 5)
            concurrent[index] += samples
            walls[index] += wall
    return {g.config.name: {
        "model": g.config.model, "processes": g.config.processes,
        "serial_ms": summary(serial[i]), "concurrent_ms": summary(concurrent[i]), "concurrency": CONCURRENCY,
        "requests_per_s": len(concurrent[i]) / walls[i],
        "redis_commands_per_request": (len(commands[g.config.name]) / SAMPLE) if g.config.name in commands else None,
        "redis_commands_sample": _tally(commands.get(g.config.name, [])),
    } for i, g in enumerate(gateways)}


def _ask_many(asker: Asker, count: int) -> list[float]:
    return [asker.ask() for _ in range(count)]


def _tally(commands: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for command in commands:
        counts[command] = counts.get(command, 0) + 1
    return counts


def configs(redis_url: str, accounts_file: Path) -> list[Config]:
    """What runs: ChatHub with the key limit (the store on a path every version has),
    and, with the pool, Copilot on 4 accounts; each in memory and on Redis."""
    keyed = {"BINGO_KEY_RPM": "1000000"}
    shared = {"REDIS_URL": redis_url}
    found = [
        Config("chathub, no store", "Creative", {}, 1),
        Config("chathub + key limit, memory, 1 process", "Creative", keyed, 1),
        Config("chathub + key limit, Redis, 2 processes", "Creative", {**keyed, **shared}, 2, redis=True),
    ]
    if HAS_POOL:
        pool = {**POOL_ENV, "COPILOT_ACCOUNTS_FILE": str(accounts_file)}
        found += [
            Config(f"copilot pool of {ACCOUNTS}, memory, 1 process", "copilot", pool, 1),
            Config(f"copilot pool of {ACCOUNTS}, Redis, 2 processes", "copilot", {**pool, **shared}, 2, redis=True),
        ]
    return found


def run_e2e(options: Options, out_dir: Path) -> dict[str, Any]:
    """Every configuration at once against one sandbox and one redis-server."""
    rounds = 40 if options.quick else 400
    accounts_file = out_dir / "pool-accounts.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    accounts_file.write_text("".join(json.dumps({"name": f"anon-{n}", "anonymous": True}) + "\n"
                                     for n in range(1, ACCOUNTS + 1)))
    sandbox = SandboxProcess(out_dir / "pool-sandbox.log", None)
    gateways: list[Gateway] = []
    try:
        env = upstream_env(sandbox.upstream, None, None, dict(options.gateway_env))
        with running_redis() as server:
            for n, config in enumerate(configs(server.url, accounts_file)):
                gateways.append(Gateway(config, env, out_dir / f"pool-gateway-{n}.log"))
            figures = measure(gateways, rounds, server)
    finally:
        for gateway in gateways:
            gateway.stop()
        sandbox.stop()
    return {"rounds": rounds, "has_pool": HAS_POOL, "configs": figures, "added": _added(figures)}


def _added(figures: dict[str, Any]) -> dict[str, Any]:
    """Each Redis configuration against its in-memory twin: added p50 and the ratios."""
    names = list(figures)
    pairs = {}
    for memory_name, redis_name in zip(names[1::2], names[2::2], strict=False):
        memory, redis = figures[memory_name], figures[redis_name]
        pairs[redis_name] = {
            "against": memory_name,
            "added_p50_ms": difference(redis["serial_ms"]["p50"], memory["serial_ms"]["p50"]),
            "p50_ratio": ratio(redis["serial_ms"]["p50"], memory["serial_ms"]["p50"]),
            "throughput_ratio": ratio(redis["requests_per_s"], memory["requests_per_s"]),
        }
    return pairs
