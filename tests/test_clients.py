"""Real client frameworks against the Procfile command: LangChain's ChatOpenAI.

The sandbox answers with a scripted text (`[sandbox:reply=<base64url>]`), so what
the model "said" is exact, and the test checks what the framework makes of the
gateway's OpenAI-shaped answer: tool calls from `bind_tools`, a parsed object from
`with_structured_output`, and plain streaming.
"""
from __future__ import annotations

import base64

import langchain_openai
import pytest
from pydantic import BaseModel

from tests.helpers import expected_content
from tests.test_e2e import Gateway


pytestmark = pytest.mark.e2e


def reply(text: str) -> str:
    return f"[sandbox:reply={base64.urlsafe_b64encode(text.encode()).decode().rstrip('=')}]"


@pytest.fixture(scope="module")
def gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("clients") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


@pytest.fixture()
def chat(gateway, sandbox):
    return langchain_openai.ChatOpenAI(
        base_url=f"{gateway.base}/v1", api_key="anything", model="copilot", max_retries=0, timeout=30,
    )


def get_weather(city: str) -> str:
    """The weather now in a city."""
    return f"21 C in {city}"


class Weather(BaseModel):
    city: str
    celsius: int


def test_langchain_invoke_and_stream_give_the_exact_answer(chat):
    assert chat.invoke("Hello").content == expected_content("Hello")
    assert "".join(chunk.content for chunk in chat.stream("Hello")) == expected_content("Hello")


def test_langchain_bind_tools_gives_tool_calls(chat):
    said = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    message = chat.bind_tools([get_weather]).invoke(f"Weather in Paris? {reply(said)}")
    assert [(call["name"], call["args"]) for call in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.tool_calls[0]["id"].startswith("call_")
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_langchain_with_structured_output_parses_the_object(chat):
    said = 'Here you are:\n```json\n{"city": "Paris", "celsius": 21}\n```'
    parsed = chat.with_structured_output(Weather).invoke(f"Weather in Paris? {reply(said)}")
    assert parsed == Weather(city="Paris", celsius=21)
