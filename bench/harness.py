"""The running pieces one scheme's measurement needs, started and stopped together.

`running(options, scheme, certs)` starts the sandbox (plain, or TLS with the test
certificate), the gateway and the two baseline readers (each in its own process,
all sharing one environment: URLs, keep-alive, CA bundle), yields a Harness, and
stops them all in `finally`, whatever happened in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from . import cpus, procstat
from .certs import CertFiles
from .options import Options
from .services import (
    GatewayProcess,
    ReaderProcess,
    SandboxProcess,
    upstream_env,
)
from .sides import GatewaySide, ReaderSide, Side

READERS = ("direct", "minimal")  # bingo's own client, and the floor


@dataclass
class Harness:
    options: Options
    scheme: str  # "ws" (plain) or "wss" (TLS)
    sandbox: SandboxProcess
    gateway: GatewayProcess
    readers: list[ReaderProcess]
    sides: dict[str, Side]  # gateway, direct, minimal, in that order
    env: dict[str, str]  # what the gateway and the readers were started with

    def settle(self) -> None:
        """Wait (bounded) until the sandbox has no websocket open: phases stay apart."""
        self.sandbox.wait_idle(10.0)

    def upstream_load(self) -> procstat.Utilisation:
        """Measures the sandbox's CPU over a block, as cores busy on average."""
        return procstat.Utilisation(self.sandbox.process.pid)

    def memory(self) -> dict[str, int]:
        """Worker and master RSS, threads, and their PSS together, now."""
        worker = procstat.status(self.gateway.worker_pid)
        return {
            "worker_rss_kb": worker["rss_kb"],
            "worker_threads": worker["threads"],
            "master_rss_kb": procstat.status(self.gateway.master_pid)["rss_kb"],
            # RSS counts pages the forked worker shares with the master twice; PSS not.
            "master_plus_worker_pss_kb": procstat.pss_kb(self.gateway.master_pid)
            + procstat.pss_kb(self.gateway.worker_pid),
        }

    def pinned(self) -> contextlib.AbstractContextManager[cpus.Placement]:
        """Gateway and readers on one core, sandbox and load generator on the rest."""
        measured = [self.gateway.master_pid, self.gateway.worker_pid]
        measured += [r.process.pid for r in self.readers]
        return cpus.placed(cpus.plan(True), measured, [self.sandbox.process.pid])


@contextlib.contextmanager
def running(
    options: Options, scheme: str, certs: CertFiles | None
) -> Iterator[Harness]:
    """Start sandbox, gateway, readers; stop them in reverse, always."""
    out = options.json_path.parent / scheme
    started: list[SandboxProcess | GatewayProcess | ReaderProcess] = []
    try:
        sandbox = SandboxProcess(out / "sandbox.log", certs)
        started.append(sandbox)
        env = upstream_env(
            sandbox.upstream,
            options.keepalive,
            certs,
            dict(options.gateway_env),
            options.protocol,
        )
        gateway = GatewayProcess(env, out / "gunicorn.log")
        started.append(gateway)
        readers = []
        for name in READERS:
            readers.append(ReaderProcess(name, env, out / f"{name}.log"))
            started.append(readers[-1])
        job = {"seconds": options.stream_timeout}  # the protocol is in env: BINGO_UPSTREAM
        sides: dict[str, Side] = {
            "gateway": GatewaySide(gateway, options.stream_timeout)
        }
        for name, process in zip(READERS, readers):
            sides[name] = ReaderSide(name, process, job)
        yield Harness(options, scheme, sandbox, gateway, readers, sides, env)
    finally:
        for process in reversed(started):
            process.stop()
