"""Read another process's CPU time, RSS and thread count from /proc (Linux only).

`/proc/<pid>/stat` utime+stime covers every thread of the process, which is what a
threaded gunicorn worker spends; children are not included.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Self

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.05


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far, all its threads.

    This is /proc/<pid>/stat's utime+stime, read at nanosecond resolution through
    the process's CPU clock (the clockid clock_getcpuclockid(3) returns for it):
    the kernel derives both from the same counter, and 10 ms ticks are too coarse
    for one wave of answers. Falls back to /proc when the clock is not available.
    """
    try:
        return time.clock_gettime(_process_clock(pid))
    except OSError:
        return stat_cpu_seconds(pid)


def stat_cpu_seconds(pid: int) -> float:
    """utime+stime from /proc/<pid>/stat, in clock ticks (SC_CLK_TCK) turned to seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def _process_clock(pid: int) -> int:
    # Linux MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED): ~pid << 3 | 2.
    return ((~pid) << 3) | 2


def status(pid: int) -> dict[str, int]:
    """VmRSS (KB) and Threads from /proc/<pid>/status."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            found[key] = int(value.split()[0])
    return {"rss_kb": found.get("VmRSS", 0), "threads": found.get("Threads", 0)}


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages split between the processes sharing them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class PeakSampler:
    """Samples a process's RSS and threads in a daemon thread; keeps the peaks."""

    def __init__(self, pid: int, limit_seconds: float) -> None:
        self._pid = pid
        self._limit = limit_seconds
        self._stop = threading.Event()
        self.peak_rss_kb = 0
        self.peak_threads = 0
        self._thread = threading.Thread(
            target=self._run, name="bench-sampler", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sample()

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.wait(SAMPLE_SECONDS) and time.monotonic() < deadline:
            self._sample()

    def _sample(self) -> None:
        try:
            now = status(self._pid)
        except OSError:
            return
        self.peak_rss_kb = max(self.peak_rss_kb, now["rss_kb"])
        self.peak_threads = max(self.peak_threads, now["threads"])


class Utilisation:
    """CPU seconds per wall second of a process over a `with` block."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.utilisation: float | None = None

    def __enter__(self) -> Self:
        self._cpu, self._wall = cpu_seconds(self._pid), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        self.utilisation = (
            (cpu_seconds(self._pid) - self._cpu) / wall if wall > 0 else None
        )
