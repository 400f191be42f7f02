"""The baseline: bingo's own ChatHub client reading the sandbox, no HTTP in between.

`open_chathub_turn` creates the conversation (requests), opens the websocket through
`bingo.transport.open_websocket` (websocket-client, `skip_utf8_validation=True`, the
same call the gateway makes) and `events()` yields Delta/Progress/Finish. It runs in
its own process (`python -m bench.direct`: one JSON job per line on stdin, one JSON
result per line on stdout), so its CPU is counted apart and it sits on the same core
the gateway worker gets.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace

import websocket

from bingo.chathub import open_chathub_turn
from bingo.config import Settings
from bingo.events import Delta, Finish, TurnRequest
from bingo.models import resolve_model
from bingo.prompt import Prompt

from .traffic import MODEL, direct_answer

JOIN_SECONDS = 5.0


def describe(settings: Settings) -> str:
    """The baseline's options, exactly, for the table and RESULTS.md."""
    return (
        f"bingo.chathub.open_chathub_turn(Settings(create_url=<sandbox>, chathub_url=<sandbox>, "
        f"connect_timeout={settings.connect_timeout:g}, keepalive_seconds={settings.keepalive_seconds:g}, "
        f"idle_timeout={settings.idle_timeout:g}, total_timeout={settings.total_timeout:g}), "
        f"TurnRequest(resolve_model({MODEL!r}), Prompt(prompt, ''), watch=None)).events(), one thread per stream; "
        f"websocket-client {websocket.__version__} through bingo.transport.open_websocket: "
        "create_connection(..., skip_utf8_validation=True), no proxy, no wsaccel"
    )


def make_settings(
    create_url: str, chathub_url: str, keepalive: float | None
) -> Settings:
    """The gateway's defaults, pointed at the sandbox, as the gateway reads them."""
    settings = Settings(create_url=create_url, chathub_url=chathub_url)
    return (
        settings
        if keepalive is None
        else replace(settings, keepalive_seconds=keepalive)
    )


@dataclass
class DirectResult:
    """What the direct client saw of one turn (times from time.monotonic())."""

    prompt: str
    started: float = 0.0
    ended: float = 0.0
    delta_times: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    utf8_skipped: bool | None = None  # websocket-client's setting on the open socket
    error: str | None = None

    @property
    def intact(self) -> bool:
        return (
            self.error is None
            and self.finish_reason == "stop"
            and self.text == direct_answer(self.prompt)
        )


def read_turn(
    settings: Settings, prompt: str, first_only: bool = False
) -> DirectResult:
    """One turn, read to its Finish (or to its first delta when `first_only`)."""
    result = DirectResult(prompt, started=time.monotonic())
    try:
        turn = open_chathub_turn(
            settings, TurnRequest(resolve_model(MODEL), Prompt(prompt, ""))
        )
    except Exception as exc:  # noqa: BLE001  # the benchmark counts failures, it does not stop on them
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    try:
        result.utf8_skipped = _utf8_skipped(turn)
        for event in turn.events():
            if isinstance(event, Delta) and event.text:
                result.delta_times.append(time.monotonic())
                result.text += event.text
                if first_only:
                    break
            elif isinstance(event, Finish):
                result.finish_reason = event.reason
                break
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        turn.close()
        result.ended = time.monotonic()
    return result


def _utf8_skipped(turn: object) -> bool | None:
    """websocket-client's setting on the socket this turn really reads (None if hidden)."""
    frames = getattr(getattr(turn, "_ws", None), "frame_buffer", None)
    return getattr(frames, "skip_utf8_validation", None)


def read_turns(
    settings: Settings, prompts: list[str], seconds: float, spread: float = 0.0
) -> list[DirectResult]:
    """One thread per prompt, released by a barrier, starting evenly over `spread` s."""
    results: list[DirectResult | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def work(index: int) -> None:
        try:
            barrier.wait(JOIN_SECONDS)
        except threading.BrokenBarrierError:
            pass
        time.sleep(spread * index / len(prompts))
        results[index] = read_turn(settings, prompts[index])

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
        r or DirectResult(p, error=f"no result after {seconds:g} s")
        for p, r in zip(prompts, results)
    ]


def run_job(job: dict) -> dict:
    """One job: `first` (a first-token round) or `waves` (prompts, `concurrency` at a time)."""
    settings = make_settings(
        job["create_url"], job["chathub_url"], job.get("keepalive")
    )
    if job["kind"] == "first":
        result = read_turn(settings, job["prompt"], first_only=True)
        return {"result": asdict(result)}
    prompts, size = job["prompts"], job["concurrency"]
    results: list[DirectResult] = []
    cpu_before, wall_before = time.process_time(), time.monotonic()
    for start in range(0, len(prompts), size):
        results += read_turns(
            settings,
            prompts[start : start + size],
            job["seconds"],
            job.get("spread", 0.0),
        )
    return {
        "cpu_seconds": time.process_time() - cpu_before,
        "wall_seconds": time.monotonic() - wall_before,
        "results": [{**asdict(r), "intact": r.intact} for r in results],
    }


def main() -> None:
    """Serve jobs until stdin closes (the parent bounds every wait for a result)."""
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run_job(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
