"""End to end for `python -m bench --pool`: the Procfile command with its state in
memory (one process) beside two processes sharing Redis (WEB_CONCURRENCY=2).

Every gateway serves the same one-shot chat requests from the sandbox with
BINGO_KEY_RPM on (so each request reaches the state store); the baseline in the same
run is one process with the limit off, which never touches the store. Runs one
gateway at a time on loopback, each stopped in a `finally`.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.redis_server import running_redis

from .child import Managed
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
MODEL = "Creative"  # ChatHub, as the rest of the benchmark
CONCURRENCY = 8


class Gateway(Managed):
    """The Procfile command on a free loopback port with `processes` workers."""

    def __init__(self, env: dict[str, str], processes: int, log_path: Path) -> None:
        self.port = free_port()
        env = {**env, "WEB_CONCURRENCY": str(processes), "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}"}
        super().__init__(procfile_command(), env, log_path, stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, 20.0)
            wait_healthy(self.port, 20.0)
        except BaseException:
            self.stop()
            raise


def ask(port: int, count: int) -> list[float]:
    """`count` one-shot chat requests on one keep-alive connection: milliseconds each."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"the gateway answered {response.status}")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return samples


def load(port: int, count: int) -> tuple[list[float], float]:
    """`count` requests over CONCURRENCY connections: milliseconds each, requests a second."""
    parts: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            parts[index] = ask(port, count // CONCURRENCY)
        except BaseException as exc:  # noqa: BLE001  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CONCURRENCY)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"a load thread failed: {errors[0]}")
    flat = [s for part in parts for s in part]
    return flat, len(flat) / wall


def measure(env: dict[str, str], processes: int, log_path: Path, count: int) -> dict[str, Any]:
    gateway = Gateway(env, processes, log_path)
    try:
        ask(gateway.port, 20)  # warm: every worker's first request is slower
        serial = ask(gateway.port, count)
        concurrent, per_second = load(gateway.port, count)
    finally:
        gateway.stop()
    return {"processes": processes, "serial_ms": summary(serial), "concurrent_ms": summary(concurrent),
            "concurrency": CONCURRENCY, "requests_per_s": per_second}


def run_e2e(options: Options, out_dir: Path) -> dict[str, Any]:
    """The three gateways, one after another, against one sandbox."""
    count = 40 if options.quick else 400
    sandbox = SandboxProcess(out_dir / "pool-sandbox.log", None)
    try:
        env = upstream_env(sandbox.upstream, None, None, dict(options.gateway_env))
        baseline = measure(env, 1, out_dir / "pool-baseline.log", count)
        memory = measure({**env, "BINGO_KEY_RPM": "1000000"}, 1, out_dir / "pool-memory.log", count)
        with running_redis() as server:
            shared = {**env, "BINGO_KEY_RPM": "1000000", "REDIS_URL": server.url}
            redis = measure(shared, 2, out_dir / "pool-redis.log", count)
    finally:
        sandbox.stop()
    figures = {"baseline": baseline, "memory": memory, "redis": redis}
    for name in ("memory", "redis"):
        figures[f"{name}_added_p50_ms"] = difference(figures[name]["serial_ms"]["p50"], baseline["serial_ms"]["p50"])
        figures[f"{name}_throughput_ratio"] = ratio(figures[name]["requests_per_s"], baseline["requests_per_s"])
    return figures
