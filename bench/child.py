"""Child processes, generically: start one with its log file, read its stdout line
by line within a time bound, stop it (TERM, then KILL).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_SECONDS = 10.0
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus proxies (loopback only) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(extra)
    return env


class Managed:
    """A child process with its log file; stop() is idempotent and bounded."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        **popen: object,
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115  # open as long as the child runs; stop() closes it
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=self._log, **popen
        )  # type: ignore[call-overload]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_SECONDS)
        for stream in (self.process.stdout, self.process.stdin):
            if stream is not None and not stream.closed:
                stream.close()
        self._log.close()


class LineReader:
    """Reads whole lines from a child's stdout, each within a time bound."""

    def __init__(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self._lines: list[bytes] = []

    def line(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while not self._lines:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError(f"no line from the child within {seconds:g} s")
                chunk = os.read(self._fd, 1 << 20)
                if not chunk:
                    raise RuntimeError("the child exited")
                *done, self._buffer = (self._buffer + chunk).split(b"\n")
                self._lines += [line for line in done if line.strip()]
        return self._lines.pop(0).decode()
