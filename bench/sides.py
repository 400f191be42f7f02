"""The three sides every figure compares, behind one shape.

- gateway: streamed chat completions through gunicorn, read by this process's
  load generator; CPU is the gunicorn worker's.
- direct: bingo's own upstream client in its own process (direct.py).
- minimal: the least client that reads the same answer (minimal.py): the floor.

A side answers `first_ms(prompt)` (one turn to its first token) and
`waves(prompts, concurrency, spread)` (CPU seconds and one record per turn:
prompt, started, ended, times of the token-bearing reads, intact, error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from . import load, procstat
from .response import StreamResult
from .services import GatewayProcess, ReaderProcess
from .traffic import gateway_answer

GRACE_SECONDS = 30.0  # a reader gets this long beyond its streams' own bound
SIDES = ("gateway", "direct", "minimal")


@dataclass
class Wave:
    cpu_seconds: float
    records: list[dict]


class Side(Protocol):
    name: str

    def first_ms(self, prompt: str) -> tuple[float | None, str | None]: ...

    def waves(self, prompts: list[str], concurrency: int, spread: float) -> Wave: ...


def _stopped_at_token(result: StreamResult) -> bool:
    return bool(result.content_times)


class GatewaySide:
    """The gateway, driven over HTTP/1.1 from this process (load.py)."""

    name = "gateway"

    def __init__(self, gateway: GatewayProcess, stream_timeout: float) -> None:
        self.gateway = gateway
        self.timeout = stream_timeout

    def first_ms(self, prompt: str) -> tuple[float | None, str | None]:
        [stream] = load.run_streams(
            self.gateway.port, [prompt], self.timeout, _stopped_at_token
        )
        if stream.first_content_at is None or stream.error:
            return None, stream.error or "no token"
        return (stream.first_content_at - stream.started) * 1000, None

    def waves(self, prompts: list[str], concurrency: int, spread: float) -> Wave:
        cpu, records = 0.0, []
        for start in range(0, len(prompts), concurrency):
            before = procstat.cpu_seconds(self.gateway.worker_pid)
            streams = load.run_streams(
                self.gateway.port,
                prompts[start : start + concurrency],
                self.timeout + spread,
                spread=spread,
            )
            cpu += procstat.cpu_seconds(self.gateway.worker_pid) - before
            records += [_record(s) for s in streams]
        return Wave(cpu, records)


def _record(stream: StreamResult) -> dict:
    intact = (
        stream.error is None
        and stream.finish_reason == "stop"
        and stream.content == gateway_answer(stream.prompt)
    )
    return {
        "prompt": stream.prompt,
        "started": stream.started,
        "ended": stream.ended,
        "times": stream.content_times,
        "intact": intact,
        "error": stream.error,
    }


class ReaderSide:
    """A baseline reader process (direct.py or minimal.py), one JSON job at a time."""

    def __init__(self, name: str, process: ReaderProcess, options: dict) -> None:
        self.name = name
        self.process = process
        self.options = options  # protocol, stream timeout (seconds)

    def _call(self, job: dict, seconds: float) -> dict:
        return self.process.call({**self.options, **job}, seconds)

    def first_ms(self, prompt: str) -> tuple[float | None, str | None]:
        reply = self._call({"kind": "first", "prompt": prompt}, self._bound(1))
        turn = reply["result"]
        if not turn["delta_times"]:
            return None, turn["error"] or "no token"
        return (turn["delta_times"][0] - turn["started"]) * 1000, None

    def waves(self, prompts: list[str], concurrency: int, spread: float) -> Wave:
        job = {
            "kind": "waves",
            "prompts": prompts,
            "concurrency": concurrency,
            "spread": spread,
        }
        waves = -(-len(prompts) // concurrency)
        reply = self._call(job, self._bound(waves) + waves * spread)
        records = reply["results"]
        for record in records:
            record["times"] = record.pop("delta_times")
        return Wave(reply["cpu_seconds"], records)

    def utf8_skipped(self, prompt: str) -> bool:
        reply = self._call({"kind": "first", "prompt": prompt}, self._bound(1))
        return bool(reply["result"]["utf8_skipped"])

    def _bound(self, waves: int) -> float:
        return waves * (self.options["seconds"] + GRACE_SECONDS)
