"""Describe the machine a run happened on, as RESULTS.md records it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys


def describe() -> dict[str, object]:
    """nproc, `free -h`'s memory line, CPU model, kernel and Python version."""
    return {
        "nproc": os.cpu_count(),
        "memory": _free(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def _free() -> str:
    try:
        lines = subprocess.run(
            ["free", "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    mem = next((line for line in lines if line.startswith("Mem:")), "")
    return f"{mem.split()[1]} RAM" if mem else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
