"""openai-agents with its default settings (the Responses API) runs an agent whose
model calls a function tool, against the Procfile command.

openai-agents pins what the gateway's own test venv must not follow (its MCP
dependency wants an older `websockets` than the sandbox uses), so scripts/test.sh
installs it into tests/.agents and the agent runs in a subprocess with that
directory first on its path. The sandbox scripts what the model says: first the
call, then the answer once the tool's result is in the conversation.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import b64
from tests.test_e2e import Gateway

AGENTS = Path(__file__).resolve().parent / ".agents"

pytestmark = pytest.mark.e2e

SCRIPT = '''
import sys
from openai import AsyncOpenAI
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

set_tracing_disabled(True)  # tracing would export to OpenAI
set_default_openai_client(AsyncOpenAI(base_url=sys.argv[1], api_key="anything", max_retries=0))


@function_tool
def get_weather(city: str) -> str:
    """The weather now in a city."""
    print(f"tool called with {city}", file=sys.stderr)
    return f"21 C in {city}"


agent = Agent(name="weather", instructions="Answer briefly.", tools=[get_weather])
print(Runner.run_sync(agent, sys.argv[2]).final_output)
'''


@pytest.fixture(scope="module")
def gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("agents") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


def test_an_agent_with_default_settings_calls_its_function_tool(gateway, sandbox):
    if not (AGENTS / "agents").is_dir():
        pytest.skip("openai-agents is not installed in tests/.agents (bash scripts/test.sh installs it)")
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    prompt = f"Weather in Paris? [sandbox:replies={b64(call)},{b64('It is 21 C in Paris.')}]"
    env = {**os.environ, "PYTHONPATH": str(AGENTS)}
    result = subprocess.run([sys.executable, "-c", SCRIPT, f"{gateway.base}/v1", prompt],
                            check=False, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tool called with Paris" in result.stderr
    assert result.stdout.strip() == "It is 21 C in Paris."
    responses = [r for r in sandbox.requests if r["path"] == "/c/api/start"]
    assert len(responses) >= 2  # the call, then the answer with the tool's result
