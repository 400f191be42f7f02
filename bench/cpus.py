"""CPU placement: unpinned (the headline) or the measured process on a core of its own.

Unpinned, the OS places the gateway, the readers, the sandbox and the load generator
on the machine's cores as it would in production. Pinned (a detail), the gateway
worker and the baseline readers share one core and the sandbox and the load
generator the others, so each side is measured alone on identical ground.
`pin_process` moves every thread of a running process; threads started later
inherit the mask of the thread that starts them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    measured: frozenset[int]  # gateway processes, baseline readers
    others: frozenset[int]  # sandbox, load generator, this process

    def describe(self) -> str:
        if self.measured == self.others:
            return "not pinned"
        return (
            f"gateway and readers on CPU {sorted(self.measured)}, "
            f"sandbox and load generator on CPU {sorted(self.others)}"
        )


def plan(pin: bool) -> Placement:
    """Split the CPUs this process may use; no split with one CPU or pin=False."""
    cpus = frozenset(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Placement(cpus, cpus)
    measured = frozenset({max(cpus)})
    return Placement(measured, cpus - measured)


def pin_process(pid: int, cpus: Iterable[int]) -> None:
    """Set the affinity of every thread the process has now (races are ignored)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), set(cpus))


@contextlib.contextmanager
def placed(
    placement: Placement, measured: list[int], others: list[int]
) -> Iterator[Placement]:
    """Apply a placement to running processes (and this one); restore all after."""
    everything = placement.measured | placement.others
    try:
        for pid in measured:
            pin_process(pid, placement.measured)
        for pid in others:
            pin_process(pid, placement.others)
        pin_process(os.getpid(), placement.others)
        yield placement
    finally:
        for pid in [*measured, *others, os.getpid()]:
            with contextlib.suppress(OSError):
                pin_process(pid, everything)
