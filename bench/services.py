"""The processes a run needs: the local upstream and the Procfile's gunicorn command.

Each runs in its own process, so neither competes with the load generator or the
baseline for a GIL. Both bind 127.0.0.1 only, log into the output directory, and are
stopped (TERM, then KILL) by whoever started them, in a `finally`.
"""
from __future__ import annotations

import http.client
import json
import os
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procstat
from .cpus import spawn_on

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 20.0
STOP_SECONDS = 10.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class Upstream:
    create_url: str
    chathub_url: str
    copilot_url: str
    port: int


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus proxies (loopback only) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(extra)
    return env


def procfile_command() -> list[str]:
    """The Procfile's web command, with its executable taken from this interpreter's venv."""
    line = (ROOT / "Procfile").read_text().strip()
    if not line.startswith("web: "):
        raise RuntimeError("the Procfile has no 'web:' line")
    command = shlex.split(line[len("web: ") :])
    command[0] = str(Path(sys.executable).with_name(command[0]))
    return command


class Managed:
    """A child process with its log file; stop() is idempotent and bounded."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cpus: frozenset[int], **popen: object) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        with spawn_on(cpus):
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=self._log, **popen)  # type: ignore[call-overload]

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


class SandboxProcess(Managed):
    """`python -m bingo.sandbox --port 0`, its URLs read from the banner it prints."""

    def __init__(self, log_path: Path, cpus: frozenset[int]) -> None:
        command = [sys.executable, "-m", "bingo.sandbox", "--port", "0"]
        super().__init__(command, clean_env(), log_path, cpus, stdout=subprocess.PIPE)
        try:
            reader = LineReader(self.process)
            urls = dict(reader.line(START_SECONDS).strip().split("=", 1) for _ in range(3))
            port = int(urls["BINGO_CREATE_URL"].split(":")[2].split("/")[0])
            self.upstream = Upstream(urls["BINGO_CREATE_URL"], urls["BINGO_CHATHUB_URL"], urls["BINGO_COPILOT_URL"], port)
        except BaseException:
            self.stop()
            raise

    def open_sockets(self) -> int:
        """Websocket sessions the sandbox still holds open."""
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=5)
        try:
            connection.request("GET", "/sandbox/stats")
            return int(json.loads(connection.getresponse().read())["open"])
        finally:
            connection.close()

    def wait_idle(self, seconds: float = 10.0) -> bool:
        """True once every websocket is closed; False if `seconds` pass first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.open_sockets() == 0:
                return True
            time.sleep(0.05)
        return False


class GatewayProcess(Managed):
    """The Procfile command, one worker, bound to loopback, pointed at the sandbox."""

    def __init__(
        self, upstream: Upstream, log_path: Path, keepalive: float | None, cpus: frozenset[int], extra_env: dict[str, str]
    ) -> None:
        self.port = free_port()
        env = clean_env(
            PORT=str(self.port),
            WEB_CONCURRENCY="1",
            # Same command as the Procfile; only the bind narrows to loopback.
            GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{self.port}",
            BINGO_CREATE_URL=upstream.create_url,
            BINGO_CHATHUB_URL=upstream.chathub_url,
            BINGO_COPILOT_URL=upstream.copilot_url,
        )
        env.pop("BINGO_THREADS", None)
        if keepalive is not None:
            env["BINGO_KEEPALIVE_SECONDS"] = f"{keepalive:g}"
        env.update(extra_env)
        self.command = procfile_command()
        super().__init__(self.command, env, log_path, cpus, stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, START_SECONDS)
            wait_healthy(self.port, START_SECONDS)  # the worker loads the app after the bind
            self.master_pid = self.process.pid
            self.worker_pid = _only_child(self.master_pid, START_SECONDS)
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class DirectProcess(Managed):
    """`python -m bench.direct`: the baseline, serving one JSON job per line."""

    def __init__(self, log_path: Path, cpus: frozenset[int]) -> None:
        command = [sys.executable, "-m", "bench.direct"]
        super().__init__(command, clean_env(), log_path, cpus, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reader = LineReader(self.process)

    def call(self, job: dict, seconds: float) -> dict:
        """Send one job and wait (at most `seconds`) for its result."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")
        self.process.stdin.flush()
        return json.loads(self._reader.line(seconds))

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()  # its read loop ends; SIGTERM follows if not
            try:
                self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        super().stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {seconds:g} s")


def wait_healthy(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    raise TimeoutError(f"the gateway on 127.0.0.1:{port} did not answer /healthz within {seconds:g} s")


def _only_child(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = procstat.children(pid)
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise RuntimeError(f"gunicorn {pid} did not settle on exactly one worker")


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
