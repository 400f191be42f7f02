"""The seed's own examples, verbatim but for the base URL, against the Procfile command.

The seed (../shared/seed/) is the user's description of the system, and its snippets
must keep working: curl, the openai 0.28 Python package one-shot and streaming (the
streaming one reads `chunk.choices[0].message.content` on every chunk), and the
openai npm package. openai 0.28 cannot share a venv with openai 1.x: scripts/test.sh
installs it into tests/.openai028, which goes first on the snippet's PYTHONPATH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import content_of, expected_content, read_sse
from tests.test_e2e import Gateway

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed"
SEED_URL = "https://greff3-bingo.hf.space"
OPENAI_028 = ROOT / "tests" / ".openai028"
NODE_DIR = ROOT / "tests" / "node"

pytestmark = pytest.mark.e2e


def seed_blocks() -> list[str]:
    """Every fenced code block of the seed, in order."""
    files = sorted(SEED.glob("*.txt"))
    if not files:
        pytest.skip(f"the seed is not beside the repository ({SEED})")
    return re.findall(r"```[a-z]*\n(.*?)```", files[0].read_text(encoding="utf-8"), re.DOTALL)


def block(marker: str) -> str:
    found = [b for b in seed_blocks() if marker in b]
    assert len(found) == 1, f"one seed block with {marker!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def gateway(sandbox_server, tmp_path_factory):
    """The Procfile command as a newcomer runs it: no key, no setting but the upstream URL."""
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("seed") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


def test_the_seed_curl_example(gateway, sandbox):
    script = block("curl -kL").replace(SEED_URL, gateway.base)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert content_of(read_sse(out)) == expected_content("Hello")


@pytest.mark.parametrize(
    "marker, expected",
    [
        ("chat_completion = openai.ChatCompletion.create", expected_content("Hello") + "\n"),
        ("stream=True", expected_content("Hello")),
    ],
    ids=["one-shot", "streaming"],
)
def test_the_seed_openai_028_examples(gateway, sandbox, marker, expected):
    if not (OPENAI_028 / "openai").is_dir():
        pytest.skip("openai 0.28 is not installed in tests/.openai028 (bash scripts/test.sh installs it)")
    script = block(marker).replace(SEED_URL, gateway.base)
    env = {**os.environ, "PYTHONPATH": str(OPENAI_028)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == expected


@pytest.mark.skipif(not (NODE_DIR / "node_modules" / "openai").is_dir() or not shutil.which("node"),
                    reason="node or the openai npm package is missing (scripts/test.sh installs it when npm exists)")
def test_the_seed_node_example(gateway, sandbox):
    script = NODE_DIR / "_seed.mjs"  # beside node_modules so `import 'openai'` resolves
    script.write_text(block("import OpenAI from 'openai'").replace(SEED_URL, gateway.base), encoding="utf-8")
    try:
        result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    finally:
        script.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == expected_content("Hello")
