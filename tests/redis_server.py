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
    """One redis-server process; `url` carries the password when there is one, and
    with `tls` the server speaks only TLS (a trustme CA, named in the URL's query)."""

    def __init__(self, password: str = "", tls: bool = False) -> None:
        if BINARY is None:
            raise RuntimeError(MISSING)
        self.password = password
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="bingo-redis-")
        self.ca_file = f"{self._dir.name}/ca.pem" if tls else ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.ca_file:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        tls = {"ssl": True, "ssl_ca_certs": self.ca_file} if self.ca_file else {}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                           decode_responses=True, socket_timeout=5, **tls)  # type: ignore[arg-type]

    def _listen_arguments(self) -> list[str]:
        if not self.ca_file:
            return ["--port", str(self.port)]
        import trustme  # the test extra's CA maker, as tests/test_tls.py uses

        ca, files = trustme.CA(), {"cert": f"{self._dir.name}/cert.pem", "key": f"{self._dir.name}/key.pem"}
        issued = ca.issue_cert("127.0.0.1")
        ca.cert_pem.write_to_path(self.ca_file)
        issued.cert_chain_pems[0].write_to_path(files["cert"])
        issued.private_key_pem.write_to_path(files["key"])
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", files["cert"],
                "--tls-key-file", files["key"], "--tls-ca-cert-file", self.ca_file, "--tls-auth-clients", "no"]

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
        command = [str(BINARY), *self._listen_arguments(), "--bind", "127.0.0.1", "--save", "",
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
def running_redis(password: str = "", tls: bool = False) -> Iterator[RedisServer]:
    """A started RedisServer, stopped and cleaned up afterwards."""
    server = RedisServer(password, tls)
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
