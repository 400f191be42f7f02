"""The job loop every reader process runs: one JSON job per line on stdin, one JSON
result per line on stdout, so the parent bounds every wait and counts CPU apart.

A reader is a function `read(prompt, first_only) -> TurnResult`; this module runs
it once (`first`) or for many prompts, `concurrency` threads at a time (`waves`),
and reports the process CPU those waves took.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

JOIN_SECONDS = 5.0


@dataclass
class TurnResult:
    """What one reader saw of one turn (times from time.monotonic())."""

    prompt: str
    started: float = 0.0
    ended: float = 0.0
    delta_times: list[float] = field(default_factory=list)
    text: str = ""
    finished: bool = False  # the upstream's end of turn arrived
    utf8_skipped: bool | None = None  # websocket-client's setting on the open socket
    error: str | None = None


Reader = Callable[[str, bool], TurnResult]
Expected = Callable[[str], str]


def read_turns(
    read: Reader, prompts: list[str], seconds: float, spread: float = 0.0
) -> list[TurnResult]:
    """One thread per prompt, released by a barrier, starting evenly over `spread` s."""
    results: list[TurnResult | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def work(index: int) -> None:
        try:
            barrier.wait(JOIN_SECONDS)
        except threading.BrokenBarrierError:
            pass
        time.sleep(spread * index / len(prompts))
        results[index] = read(prompts[index], False)

    threads = [
        threading.Thread(target=work, args=(i,), daemon=True)
        for i in range(len(prompts))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds + spread + JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        r or TurnResult(p, error=f"no result after {seconds:g} s")
        for p, r in zip(prompts, results)
    ]


def run_job(read: Reader, expected: Expected, job: dict) -> dict:
    """`first` (one turn to its first delta) or `waves` (prompts, N at a time)."""
    if job["kind"] == "first":
        return {"result": asdict(read(job["prompt"], True))}
    prompts, size = job["prompts"], job["concurrency"]
    results: list[TurnResult] = []
    cpu_before, wall_before = time.process_time(), time.monotonic()
    for start in range(0, len(prompts), size):
        results += read_turns(
            read, prompts[start : start + size], job["seconds"], job.get("spread", 0.0)
        )
    return {
        "cpu_seconds": time.process_time() - cpu_before,
        "wall_seconds": time.monotonic() - wall_before,
        "results": [{**asdict(r), "intact": _intact(r, expected)} for r in results],
    }


def _intact(result: TurnResult, expected: Expected) -> bool:
    return (
        result.error is None
        and result.finished
        and result.text == expected(result.prompt)
    )


def serve(make_reader: Callable[[dict], Reader], expected: Expected) -> None:
    """Serve jobs until stdin closes; `make_reader(job)` is called on the first."""
    read: Reader | None = None
    for line in sys.stdin:
        job = json.loads(line)
        read = read or make_reader(job)
        sys.stdout.write(json.dumps(run_job(read, expected, job)) + "\n")
        sys.stdout.flush()
