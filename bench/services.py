"""The processes a run needs: the sandbox, the Procfile's gunicorn command, the readers.

Each runs in its own process, so none competes with the load generator or another
for a GIL. All bind 127.0.0.1 only, log into the output directory, and are stopped
(TERM, then KILL) by whoever started them, in a `finally`.
"""

from __future__ import annotations

import http.client
import json
import shlex
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procstat
from .certs import CertFiles
from .child import ROOT, LineReader, Managed, clean_env

START_SECONDS = 20.0


@dataclass(frozen=True)
class Upstream:
    create_url: str
    chathub_url: str
    copilot_url: str
    port: int


def procfile_command() -> list[str]:
    """The Procfile's web command, with its executable taken from this interpreter's venv."""
    line = (ROOT / "Procfile").read_text().strip()
    if not line.startswith("web: "):
        raise RuntimeError("the Procfile has no 'web:' line")
    command = shlex.split(line[len("web: ") :])
    command[0] = str(Path(sys.executable).with_name(command[0]))
    return command


class SandboxProcess(Managed):
    """`python -m bingo.sandbox --port 0`, its URLs read from the banner it prints."""

    def __init__(self, log_path: Path, certs: CertFiles | None) -> None:
        command = [sys.executable, "-m", "bingo.sandbox", "--port", "0"]
        if certs is not None:
            command += ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]
        # Checked between phases over the same TLS the clients use, with one context.
        self._context = (
            None
            if certs is None
            else ssl.create_default_context(cafile=str(certs.ca_bundle))
        )
        super().__init__(command, clean_env(), log_path, stdout=subprocess.PIPE)
        try:
            reader = LineReader(self.process)
            urls = dict(
                reader.line(START_SECONDS).strip().split("=", 1) for _ in range(3)
            )
            port = int(urls["BINGO_CREATE_URL"].split(":")[2].split("/")[0])
            self.upstream = Upstream(
                urls["BINGO_CREATE_URL"],
                urls["BINGO_CHATHUB_URL"],
                urls["BINGO_COPILOT_URL"],
                port,
            )
        except BaseException:
            self.stop()
            raise

    def open_sockets(self) -> int:
        """Websocket sessions the sandbox still holds open."""
        connection = (
            http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=5)
            if self._context is None
            else http.client.HTTPSConnection(
                "127.0.0.1", self.upstream.port, timeout=5, context=self._context
            )
        )
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

    def __init__(self, upstream_env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        env = {
            **upstream_env,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            # Same command as the Procfile; only the bind narrows to loopback.
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}",
        }
        self.command = procfile_command()
        super().__init__(self.command, env, log_path, stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, START_SECONDS)
            wait_healthy(
                self.port, START_SECONDS
            )  # the worker loads the app after the bind
            self.master_pid = self.process.pid
            self.worker_pid = _only_child(self.master_pid, START_SECONDS)
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


# On Copilot the gateway paces its account (4 answers at once, 12 a minute by default):
# the ramp's 200 streams would queue and time out, so the bench lifts both limits.
COPILOT_PACING = {"BINGO_ACCOUNT_CONCURRENCY": "1024", "BINGO_ACCOUNT_RPM": "1000000"}


def upstream_env(
    upstream: Upstream,
    keepalive: float | None,
    certs: CertFiles | None,
    extra: dict[str, str],
    protocol: str = "chathub",
) -> dict[str, str]:
    """What the gateway and the readers share: URLs, keep-alive, TLS trust, protocol."""
    env = clean_env(
        BINGO_CREATE_URL=upstream.create_url,
        BINGO_CHATHUB_URL=upstream.chathub_url,
        BINGO_COPILOT_URL=upstream.copilot_url,
    )
    env.pop("BINGO_THREADS", None)
    # The seed's names (the bench asks for Creative) on the readers' protocol.
    env["BINGO_UPSTREAM"] = protocol
    if protocol == "copilot":
        env.update(COPILOT_PACING)
    if keepalive is not None:
        env["BINGO_KEEPALIVE_SECONDS"] = f"{keepalive:g}"
    if certs is not None:
        env.update(certs.client_env())
    env.update(extra)
    return env


class ReaderProcess(Managed):
    """`python -m bench.<module>`: a baseline reader serving one JSON job per line."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        command = [sys.executable, "-m", f"bench.{module}"]
        super().__init__(
            command,
            env,
            log_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
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
    raise TimeoutError(
        f"the gateway on 127.0.0.1:{port} did not answer /healthz within {seconds:g} s"
    )


def _only_child(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = procstat.children(pid)
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise RuntimeError(f"gunicorn {pid} did not settle on exactly one worker")
