"""pydantic-ai's `Agent("openai:…")` with a structured `output_type`, against the Procfile command.

`openai:` models speak the Responses API, and a structured output is a function tool
(`final_result`) the model must call with the object's fields. pydantic-ai runs in a
subprocess from tests/.pydantic_ai (scripts/test.sh installs it there, beside the
gateway's venv, as it does for openai-agents). The sandbox scripts the model's call.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import b64
from tests.test_e2e import Gateway

PYDANTIC_AI = Path(__file__).resolve().parent / ".pydantic_ai"

pytestmark = pytest.mark.e2e

SCRIPT = '''
import sys
from pydantic import BaseModel
from pydantic_ai import Agent


class Weather(BaseModel):
    city: str
    celsius: int


agent = Agent("openai:gpt-4o", output_type=Weather)
print(agent.run_sync(sys.argv[1]).output.model_dump_json())
'''


@pytest.fixture(scope="module")
def gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("pydantic-ai") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


def test_an_agent_with_a_structured_output_type_gets_its_object(gateway, sandbox):
    if not (PYDANTIC_AI / "pydantic_ai").is_dir():
        pytest.skip("pydantic-ai is not installed in tests/.pydantic_ai (bash scripts/test.sh installs it)")
    call = '<tool_call>{"name": "final_result", "arguments": {"city": "Paris", "celsius": 21}}</tool_call>'
    said = b64(call)
    env = {**os.environ, "PYTHONPATH": str(PYDANTIC_AI), "OPENAI_BASE_URL": f"{gateway.base}/v1",
           "OPENAI_API_KEY": "anything"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, f"Weather in Paris? [sandbox:reply={said}]"],
                            check=False, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"city": "Paris", "celsius": 21}
