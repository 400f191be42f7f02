"""The running pieces one measurement needs, started and stopped together.

`running(options)` pins this process (the load generator) next to the sandbox,
starts the sandbox, the gateway and the direct baseline (each in its own process),
yields a Harness, and stops all three in `finally`, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from bingo.config import Settings

from . import cpus, load, procstat
from .direct import DirectResult, make_settings
from .options import Options
from .response import StreamResult
from .services import DirectProcess, GatewayProcess, SandboxProcess

BASELINE_GRACE = 30.0  # the baseline gets this long beyond its streams' own bound


@dataclass
class Harness:
    options: Options
    placement: cpus.Placement
    sandbox: SandboxProcess
    gateway: GatewayProcess
    direct: DirectProcess
    settings: Settings  # what the direct baseline uses: the gateway's, in-process
    boot_rss_kb: int

    def gateway_streams(
        self,
        prompts: list[str],
        stop_when: load.StopWhen | None = None,
        spread: float = 0.0,
    ) -> list[StreamResult]:
        """Streams through the gateway from this process, started over `spread` s."""
        return load.run_streams(
            self.gateway.port,
            prompts,
            self.options.stream_timeout + spread,
            stop_when,
            spread,
        )

    def _job(self, kind: str, **fields: object) -> dict:
        job = {
            "kind": kind,
            "create_url": self.settings.create_url,
            "chathub_url": self.settings.chathub_url,
        }
        return {
            **job,
            "keepalive": self.options.keepalive,
            "seconds": self.options.stream_timeout,
            **fields,
        }

    def direct_first_token(self, prompt: str) -> DirectResult:
        """One baseline turn read to its first delta, in the baseline process."""
        reply = self.direct.call(
            self._job("first", prompt=prompt),
            self.options.stream_timeout + BASELINE_GRACE,
        )
        return DirectResult(**reply["result"])

    def direct_waves(
        self, prompts: list[str], concurrency: int, spread: float = 0.0
    ) -> dict:
        """Read prompts `concurrency` at a time in the baseline process; its CPU included."""
        waves = -(-len(prompts) // concurrency)
        seconds = waves * (self.options.stream_timeout + spread + BASELINE_GRACE)
        job = self._job(
            "waves", prompts=prompts, concurrency=concurrency, spread=spread
        )
        return self.direct.call(job, seconds)

    def settle(self) -> None:
        """Wait (bounded) until the sandbox has no websocket open: phases stay apart."""
        self.sandbox.wait_idle(10.0)

    def upstream_load(self) -> procstat.Utilisation:
        """Measures the sandbox's CPU over a block, as cores busy on average."""
        return procstat.Utilisation(self.sandbox.process.pid)

    def worker_stat_cpu(self) -> float:
        return procstat.stat_cpu_seconds(self.gateway.worker_pid)

    def worker_cpu(self) -> float:
        return procstat.cpu_seconds(self.gateway.worker_pid)

    def worker_status(self) -> dict[str, int]:
        return procstat.status(self.gateway.worker_pid)


@contextlib.contextmanager
def running(options: Options) -> Iterator[Harness]:
    """Start sandbox, gateway, baseline; stop them in reverse, always."""
    out = options.json_path.parent
    placement = cpus.plan(options.pin)
    before = os.sched_getaffinity(0)
    started: list[SandboxProcess | GatewayProcess | DirectProcess] = []
    try:
        os.sched_setaffinity(0, placement.others)
        sandbox = SandboxProcess(out / "sandbox.log", placement.others)
        started.append(sandbox)
        gateway = GatewayProcess(
            sandbox.upstream,
            out / "gunicorn.log",
            options.keepalive,
            placement.measured,
            dict(options.gateway_env),
        )
        started.append(gateway)
        direct = DirectProcess(out / "direct.log", placement.measured)
        started.append(direct)
        settings = make_settings(
            sandbox.upstream.create_url, sandbox.upstream.chathub_url, options.keepalive
        )
        boot = procstat.status(gateway.worker_pid)["rss_kb"]
        yield Harness(options, placement, sandbox, gateway, direct, settings, boot)
    finally:
        for process in reversed(started):
            process.stop()
        os.sched_setaffinity(0, before)
