"""A real redis-server on a free loopback port, for the tests (and the benchmark).

No persistence (`--save "" --appendonly no`), bound to 127.0.0.1, its own temporary
directory; stopped and started again on the same port to test an outage. Tests
that need it are skipped, saying why, when the binary is absent (`.ci/run` installs
Debian's redis-server so CI never skips them).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

BINARY = shutil.which("redis-server")
MISSING = "redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)"
START_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; `url` carries the password when there is one."""

    def __init__(self, password: str = "") -> None:
        if BINARY is None:
            raise RuntimeError(MISSING)
        self.password = password
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="bingo-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                           decode_responses=True, socket_timeout=5)

    def commands_during(self, operation: Callable[[], object]) -> list[str]:
        """The commands clients sent while `operation` ran (MONITOR; a script's own
        calls are left out), so a test counts real round trips."""
        end, marker = "bingo-monitor-end", self.client()
        marker.ping()  # connected before MONITOR starts: its HELLO is not counted
        with self.client().monitor() as monitor:
            operation()
            marker.echo(end)
            seen: list[str] = []
            for _ in range(10_000):
                entry = monitor.next_command()
                if entry["command"] == f"ECHO {end}":
                    return seen
                if entry["client_type"] != "lua":
                    seen.append(entry["command"].split(" ", 1)[0].upper())
        raise AssertionError(f"MONITOR never showed the end marker; saw {seen[:20]}")

    def start(self) -> RedisServer:
        command = [str(BINARY), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self._dir.name, "--loglevel", "warning"]
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {START_SECONDS:g} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()



@contextmanager
def running_redis(password: str = "") -> Iterator[RedisServer]:
    """A started RedisServer, stopped and cleaned up afterwards."""
    server = RedisServer(password)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's redis-server; tests flush it before use."""
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis() as server:
        yield server
