"""CPU placement: the measured process gets a core of its own.

The gateway worker and the direct baseline are each pinned, in turn, to the same
core; the sandbox and the load generator share the others. Each side is then
measured alone on identical ground, and the HTTP client's work does not land on the
gateway's core (in production the client is on another machine). Children inherit
the mask at fork, so spawning under `spawn_on` pins a whole process tree.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    measured: frozenset[int]  # gateway worker, direct baseline
    others: frozenset[int]  # sandbox, load generator, this process

    def describe(self) -> str:
        if self.measured == self.others:
            return "not pinned"
        return f"measured process on CPU {sorted(self.measured)}, sandbox and load generator on CPU {sorted(self.others)}"


def plan(pin: bool) -> Placement:
    """Split the CPUs this process may use; no split with one CPU or pin=False."""
    cpus = frozenset(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Placement(cpus, cpus)
    measured = frozenset({max(cpus)})
    return Placement(measured, cpus - measured)


@contextlib.contextmanager
def spawn_on(cpus: frozenset[int]) -> Iterator[None]:
    """Run the block (a Popen) with this thread pinned to `cpus`, then restore."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
