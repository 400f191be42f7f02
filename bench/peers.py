"""`python -m bench --peers`: bingo's gateway beside gpt4free's API server, same fake.

gpt4free (`g4f[api]` from PyPI, installed once into bench/.peers-venv, never in CI)
runs its OpenAI-compatible server (`python -m g4f.cli api`) with provider CopilotApp,
which speaks Copilot to copilot.microsoft.com: POST /c/api/start, the /c/api/chat
websocket, wait for `connected`, `send`, appendText until `done`. Its process is
pointed at the sandbox over TLS, and kept off the network, by:

- `bench/peers_site/sitecustomize.py` on its PYTHONPATH: copilot.microsoft.com
  resolves to 127.0.0.1 and the sandbox's TLS port; any other name that is not
  loopback fails to resolve and any connect to an address that is not loopback is
  refused, each attempt written to a file this run reads (it must stay empty);
- SSL_CERT_FILE: certifi's bundle plus the test CA (its certificate names the host);
- G4F_CACHE_DIR with today's `.models/<date>/providers.json` (a stub whose only
  provider points at loopback): importing g4f.api builds its G4FSpace provider from
  that file and would otherwise fetch it from g4f.dev; HOME and G4F_CONFIG_DIR in
  the output directory; `--disable-pa-auto-download` (else it downloads providers
  from GitHub at start), `--ignore-cookie-files`, `--no-gui`.

bingo's gateway (the Procfile command, one worker) serves the same requests through
Copilot (BINGO_UPSTREAM default, `model: copilot`, mode smart, like CopilotApp's
"copilot" alias). Same sandbox, same prompts, same load generator; the figures:
first token at concurrency 1 (rounds alternate who goes first), CPU per answer of
each server's process (bingo: the gunicorn worker; g4f: its one uvicorn process),
N concurrent streams' first-token p50, and idle RSS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bingo.sandbox import copilot_answer_for

from . import load, machine, procstat
from .certs import CertFiles, make_certs
from .child import ROOT, Managed, clean_env
from .options import Options
from .response import StreamResult
from .services import (
    START_SECONDS,
    GatewayProcess,
    SandboxProcess,
    free_port,
    upstream_env,
    wait_for_port,
)
from .stats import ratio, summary
from .traffic import PATH, gateway_answer, prompt_for

VENV = Path(__file__).resolve().parent / ".peers-venv"
SITE = Path(__file__).resolve().parent / "peers_site"
REQUIREMENT = "g4f[api]"
HOST = "copilot.microsoft.com"
MODEL = "copilot"  # bingo: Copilot, mode smart; g4f CopilotApp: alias of "smart"
PROVIDER = "CopilotApp"
INSTALL_SECONDS = 900
PACKAGES = ("g4f", "aiohttp", "fastapi", "uvicorn", "starlette", "pydantic")
# CopilotApp inserts each citation as " [[n]](url)" and ends with a "> [n] ..." list.
_CITATION = re.compile(r" \[\[\d+\]\]\([^)\s]*\)")


def ensure_venv() -> Path:
    """bench/.peers-venv with g4f[api]; created and filled only the first time."""
    python = VENV / "bin" / "python"
    if python.exists() and _has_g4f(python):
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", REQUIREMENT],
        check=True,
        timeout=INSTALL_SECONDS,
    )
    return python


def _has_g4f(python: Path) -> bool:
    check = [
        str(python),
        "-c",
        "import importlib.util as u; exit(not u.find_spec('g4f'))",
    ]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys, ssl;"
        f"v={{n: m.version(n) for n in {PACKAGES!r}}};"
        "v['python']=sys.version.split()[0]; v['openssl']=ssl.OPENSSL_VERSION;"
        "print(json.dumps(v))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, check=True)
    return json.loads(out.stdout)


class G4fProcess(Managed):
    """gpt4free's API server on loopback, its Copilot traffic resolved to the sandbox."""

    def __init__(
        self, python: Path, upstream_port: int, certs: CertFiles, out: Path
    ) -> None:
        self.port = free_port()
        self.denied = out / "g4f-denied.log"
        self.denied.write_text("")
        cache = out / "g4f-cache"
        stub = cache / ".models" / date.today().isoformat() / "providers.json"
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(
            json.dumps(
                {
                    "providers": {"default": {"baseUrl": "http://127.0.0.1:9/v1"}},
                    "defaultModels": {"default": ""},
                }
            )
        )
        home = out / "g4f-home"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            PYTHONPATH=str(SITE),
            BENCH_PEERS_HOSTS=f"{HOST}=127.0.0.1:{upstream_port}",
            BENCH_PEERS_DENIED=str(self.denied),
            SSL_CERT_FILE=str(certs.ca_bundle),
            REQUESTS_CA_BUNDLE=str(certs.ca_bundle),
            G4F_CACHE_DIR=str(cache),
            G4F_CONFIG_DIR=str(home / ".g4f"),
            HOME=str(home),
            NO_PROXY="*",
        )
        for name in ("VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(name, None)
        self.env = env
        self.command = [
            str(python),
            "-m",
            "g4f.cli",
            "api",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-gui",
            "--disable-pa-auto-download",
            "--ignore-cookie-files",
            "--no-access-log",
            "--provider",
            PROVIDER,
        ]
        super().__init__(self.command, env, out / "g4f.log", stdout=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, START_SECONDS * 3)  # imports take ~5 s
        except BaseException:
            self.stop()
            raise
        self.pid = self.process.pid

    def denied_attempts(self) -> list[str]:
        return [line for line in self.denied.read_text().splitlines() if line]

    def guard_check(self) -> dict[str, str]:
        """The same interpreter and environment: the mapped host resolves to the
        sandbox, and an outside name is refused before any lookup (nothing leaves)."""
        code = (
            "import socket, json; r = {}\n"
            f"r['mapped'] = str(socket.getaddrinfo({HOST!r}, 443)[0][4])\n"
            "try:\n"
            "    socket.getaddrinfo('example.org', 443); r['outside'] = 'RESOLVED'\n"
            "except socket.gaierror as e:\n"
            "    r['outside'] = 'refused: ' + str(e)\n"
            "print(json.dumps(r))"
        )
        env = {**self.env, "BENCH_PEERS_DENIED": ""}
        out = subprocess.run(
            [self.command[0], "-c", code], env=env, capture_output=True, check=True
        )
        return json.loads(out.stdout)


def _request(model: str, provider: str | None) -> load.Request:
    def build(prompt: str, port: int) -> bytes:
        body = {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        }
        if provider:
            body["provider"] = provider
        data = json.dumps(body).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + data

    return build


def _g4f_intact(stream: StreamResult) -> bool:
    """The answer text, once CopilotApp's inline citation links are taken out."""
    text = copilot_answer_for(stream.prompt).text
    return (
        stream.error is None
        and stream.done
        and _CITATION.sub("", stream.content).startswith(text)
    )


def _gateway_intact(stream: StreamResult) -> bool:
    return (
        stream.error is None
        and stream.finish_reason == "stop"
        and stream.content == gateway_answer(stream.prompt)
    )


class Server:
    """One OpenAI-compatible server under test: where to send, what CPU to read."""

    def __init__(
        self,
        name: str,
        port: int,
        pid: int,
        request: load.Request,
        intact: Callable[[StreamResult], bool],
    ) -> None:
        self.name, self.port, self.pid = name, port, pid
        self.request, self.intact = request, intact

    def streams(
        self,
        prompts: list[str],
        seconds: float,
        spread: float = 0.0,
        first: bool = False,
    ) -> list[StreamResult]:
        stop = (lambda r: bool(r.content_times)) if first else None
        return load.run_streams(
            self.port, prompts, seconds, stop, spread=spread, request=self.request
        )


def _first(stream: StreamResult) -> float | None:
    if stream.error or stream.first_content_at is None:
        return None
    return (stream.first_content_at - stream.started) * 1000


def _errors(server: Server, streams: list[StreamResult]) -> list[str]:
    return [
        f"{server.name}: {s.error or 'inexact answer'}"
        for s in streams
        if not server.intact(s)
    ]


def measure(
    servers: list[Server],
    sandbox: SandboxProcess,
    options: Options,
    rounds: int,
    answers: int,
    wave: int,
    n: int,
) -> dict:
    timeout = options.stream_timeout
    out: dict = {name: {} for name in (s.name for s in servers)}
    errors: list[str] = []
    # Warm-up: imports, pools, first TLS context on both.
    for s in servers:
        warm = s.streams(
            [prompt_for(f"peer-warm-{s.name}-{i}", options) for i in range(2)], timeout
        )
        errors += _errors(s, warm)
        sandbox.wait_idle(10.0)
    for s in servers:
        out[s.name]["rss_idle_kb"] = procstat.status(s.pid)["rss_kb"]
    # 1. First token at concurrency 1, alternating who goes first.
    firsts: dict[str, list[float]] = {s.name: [] for s in servers}
    for r in range(rounds):
        order = servers if r % 2 == 0 else servers[::-1]
        for s in order:
            [stream] = s.streams(
                [prompt_for(f"peer-ttft-{s.name}-{r}", options)], timeout, first=True
            )
            ms = _first(stream)
            if ms is None:
                errors.append(f"{s.name} ttft: {stream.error or 'no token'}")
            else:
                firsts[s.name].append(ms)
        sandbox.wait_idle(10.0)
    # 2. CPU per answer: whole answers in waves, alternating the order per wave.
    cpu = {s.name: 0.0 for s in servers}
    for w in range(max(1, answers // wave)):
        order = servers if w % 2 == 0 else servers[::-1]
        for s in order:
            prompts = [
                prompt_for(f"peer-cpu-{s.name}-{w}-{i}", options) for i in range(wave)
            ]
            before = procstat.cpu_seconds(s.pid)
            streams = s.streams(
                prompts, timeout + options.spread, spread=options.spread
            )
            cpu[s.name] += procstat.cpu_seconds(s.pid) - before
            errors += _errors(s, streams)
            sandbox.wait_idle(10.0)
    counted = max(1, answers // wave) * wave
    # 3. N concurrent streams (bingo's ramp shape: started evenly over `spread`).
    for s in servers:
        prompts = [prompt_for(f"peer-n{n}-{s.name}-{i}", options) for i in range(n)]
        before = procstat.cpu_seconds(s.pid)
        with procstat.PeakSampler(s.pid, timeout + 10) as peak:
            streams = s.streams(
                prompts, timeout + options.spread, spread=options.spread
            )
        spent = procstat.cpu_seconds(s.pid) - before
        sandbox.wait_idle(10.0)
        errors += _errors(s, streams)
        out[s.name][f"n{n}"] = {
            "intact": sum(s.intact(x) for x in streams),
            "first_token_ms": summary(
                [ms for x in streams if (ms := _first(x)) is not None]
            ),
            "cpu_ms_per_answer": spent / n * 1000,
            "peak_rss_kb": peak.peak_rss_kb,
        }
    for s in servers:
        out[s.name]["first_token_c1_ms"] = summary(firsts[s.name])
        out[s.name]["cpu_ms_per_answer"] = cpu[s.name] / counted * 1000
    a, b = (s.name for s in servers)
    out["ratios"] = {
        f"{b}/{a} first_token_c1_p50": ratio(
            out[b]["first_token_c1_ms"]["p50"], out[a]["first_token_c1_ms"]["p50"]
        ),
        f"{b}/{a} cpu_ms_per_answer": ratio(
            out[b]["cpu_ms_per_answer"], out[a]["cpu_ms_per_answer"]
        ),
        f"{b}/{a} first_token_n{n}_p50": ratio(
            out[b][f"n{n}"]["first_token_ms"]["p50"],
            out[a][f"n{n}"]["first_token_ms"]["p50"],
        ),
    }
    out["counts"] = {
        "ttft_rounds": rounds,
        "cpu_answers": counted,
        "cpu_wave": wave,
        "n": n,
    }
    out["errors"] = errors[:10]
    out["error_count"] = len(errors)
    return out


def _bingo_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("gunicorn", "flask", "requests", "websocket-client"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "bingo", "gunicorn.conf.py", "Procfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    return {
        **found,
        "commit": commit,
        "uncommitted_gateway_files": len([line for line in dirty if line.strip()]),
        "python": sys.version.split()[0],
    }


def run(options: Options) -> dict:
    """Sandbox over TLS, bingo's gateway and g4f's server beside it; measure both."""
    started = time.monotonic()
    python = ensure_venv()
    out = options.json_path.parent / "peers"
    certs = make_certs(options.json_path.parent / "tls")
    started_processes: list[Managed] = []
    try:
        sandbox = SandboxProcess(out / "sandbox.log", certs)
        started_processes.append(sandbox)
        env = upstream_env(sandbox.upstream, None, certs, dict(options.gateway_env))
        env.pop("BINGO_UPSTREAM")  # the default: Copilot
        gateway = GatewayProcess(env, out / "gunicorn.log")
        started_processes.append(gateway)
        g4f = G4fProcess(python, sandbox.upstream.port, certs, out)
        started_processes.append(g4f)
        servers = [
            Server(
                "bingo",
                gateway.port,
                gateway.worker_pid,
                _request(MODEL, None),
                _gateway_intact,
            ),
            Server("g4f", g4f.port, g4f.pid, _request(MODEL, PROVIDER), _g4f_intact),
        ]
        figures = measure(
            servers,
            sandbox,
            options,
            rounds=options.peers_rounds,
            answers=options.peers_answers,
            wave=options.peers_wave,
            n=options.peers_n,
        )
        figures["g4f_children"] = procstat.children(g4f.pid)
        guard = g4f.guard_check()
        denied = g4f.denied_attempts()
        tracebacks = gateway.log_text().count("Traceback")
    finally:
        for process in reversed(started_processes):
            process.stop()
    return {
        "peers": True,
        "machine": machine.describe(),
        "versions": {"g4f_venv": versions(python), "bingo": _bingo_versions()},
        "traffic": {
            "protocol": "copilot over TLS (wss://, test CA)",
            "model": MODEL,
            "g4f_provider": PROVIDER,
            "chars": options.chars,
            "updates": options.updates,
            "delay_s": options.delay,
            "spread_s": options.spread,
        },
        "g4f_command": " ".join(g4f.command),
        "g4f_outside_attempts": denied,
        "g4f_guard_check": guard,
        "bingo_log_tracebacks": tracebacks,
        "figures": figures,
        "seconds": time.monotonic() - started,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render(result: dict) -> str:
    f = result["figures"]
    n = f["counts"]["n"]
    rows = [
        (
            "first token p50, c=1",
            *(_ms(f[s]["first_token_c1_ms"]["p50"]) for s in ("bingo", "g4f")),
        ),
        (
            "first token p99, c=1",
            *(_ms(f[s]["first_token_c1_ms"]["p99"]) for s in ("bingo", "g4f")),
        ),
        (
            "CPU per answer",
            *(f"{f[s]['cpu_ms_per_answer']:.1f} ms" for s in ("bingo", "g4f")),
        ),
        (
            f"first token p50 at N={n}",
            *(_ms(f[s][f"n{n}"]["first_token_ms"]["p50"]) for s in ("bingo", "g4f")),
        ),
        (
            f"first token p99 at N={n}",
            *(_ms(f[s][f"n{n}"]["first_token_ms"]["p99"]) for s in ("bingo", "g4f")),
        ),
        (
            f"intact at N={n}",
            *(f"{f[s][f'n{n}']['intact']}/{n}" for s in ("bingo", "g4f")),
        ),
        (
            f"CPU per answer at N={n}",
            *(f"{f[s][f'n{n}']['cpu_ms_per_answer']:.1f} ms" for s in ("bingo", "g4f")),
        ),
        (
            "RSS idle",
            *(f"{f[s]['rss_idle_kb'] / 1024:.1f} MB" for s in ("bingo", "g4f")),
        ),
        (
            f"peak RSS at N={n}",
            *(
                f"{f[s][f'n{n}']['peak_rss_kb'] / 1024:.1f} MB"
                for s in ("bingo", "g4f")
            ),
        ),
    ]
    lines = ["| peers (wss://, Copilot) | bingo | g4f |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [f"ratios: {json.dumps(f['ratios'])}"]
    lines += [f"errors: {f['error_count']} {f['errors']}"]
    lines += [f"g4f outside attempts: {result['g4f_outside_attempts']}"]
    lines += [f"guard check: {result['g4f_guard_check']}"]
    lines += [f"versions: {json.dumps(result['versions'])}"]
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
