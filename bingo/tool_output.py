"""The answer side of tool and JSON emulation: what the model wrote, checked. Pure code.

`CallParser` splits the answer, as it streams, into prose and complete `<tool_call>`
blocks; `check_call` turns a block into a ToolCall, `check_json` finds and validates
the JSON value of an answer; both raise BadOutput saying what is wrong, which
`tools.correction` and `tools.failure` turn into words. The request and prompt sides
are in `tools.py`.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.exceptions import best_match

from .tools import CLOSE, OPEN, BadOutput, ResponseFormat, Tool, ToolCall

_FENCE = re.compile(r"```[\w-]*[ \t]*\n(.*?)```", re.DOTALL)
_MAX_JSON_STARTS = 64  # where a JSON value may begin in an answer: enough for any prose

@dataclass(frozen=True, slots=True)
class Block:
    """A complete `<tool_call>...</tool_call>` block; `body` is what lies between the tags."""

    body: str

    @property
    def raw(self) -> str:
        return f"{OPEN}{self.body}{CLOSE}"


class CallParser:
    """Splits a streamed answer into prose and complete blocks, in order.

    Prose is handed on as soon as it cannot be the start of `<tool_call>`; only such
    a tail is held back. A block is held until it closes; one never closed comes
    back as prose from `finish()`.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._inside = False

    def feed(self, text: str) -> list[str | Block]:
        self._buffer += text
        out: list[str | Block] = []
        while True:
            if self._inside:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    return out
                out.append(Block(self._buffer[:end]))
                self._buffer, self._inside = self._buffer[end + len(CLOSE):], False
                continue
            start = self._buffer.find(OPEN)
            if start < 0:
                keep = _open_tail(self._buffer)
                ready, self._buffer = self._buffer[: len(self._buffer) - keep], self._buffer[len(self._buffer) - keep:]
                if ready:
                    out.append(ready)
                return out
            if start:
                out.append(self._buffer[:start])
            self._buffer, self._inside = self._buffer[start + len(OPEN):], True

    def finish(self) -> list[str | Block]:
        rest = (OPEN if self._inside else "") + self._buffer
        self._buffer, self._inside = "", False
        return [rest] if rest else []


def _open_tail(text: str) -> int:
    """How many final characters of `text` could still grow into `<tool_call>`."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if text.endswith(OPEN[:size]):
            return size
    return 0


def check_call(body: str, tools: tuple[Tool, ...], only: str | None = None) -> ToolCall:
    """The ToolCall a block's body makes; BadOutput when it is not a valid call."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadOutput(f"a {OPEN} block is not valid JSON ({exc})", "tool_call") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise BadOutput(f'a {OPEN} block must hold {{"name": ..., "arguments": {{...}}}}', "tool_call")
    name, arguments = value["name"], value.get("arguments", {})
    tool = next((t for t in tools if t.name == name), None)
    if tool is None:
        declared = ", ".join(t.name for t in tools)
        raise BadOutput(f"it calls '{name}', which is not a declared function ({declared})", "tool_call")
    if only is not None and name != only:
        raise BadOutput(f"it calls '{name}', but tool_choice requires '{only}'", "tool_call")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            pass
    if not isinstance(arguments, dict):
        raise BadOutput(f"the arguments of '{name}' are not a JSON object", "tool_call")
    problem = _mismatch(arguments, tool.parameters)
    if problem:
        raise BadOutput(f"the arguments of '{name}' do not match its parameters: {problem}", "tool_call")
    return ToolCall(new_call_id(), name, json.dumps(arguments, ensure_ascii=False))


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def check_json(text: str, response_format: ResponseFormat) -> str:
    """The JSON value of an answer, validated and re-serialised; BadOutput when there is none.

    A code fence, and prose around the value, are dropped. json_object wants an object.
    """
    objects_only = response_format.schema is None
    value = extract_json(text, objects_only)
    if response_format.schema is not None:
        problem = _mismatch(value, response_format.schema)
        if problem:
            raise BadOutput(f"the JSON does not match the schema {response_format.name}: {problem}", "json")
    return json.dumps(value, ensure_ascii=False)


_MISSING = object()


def extract_json(text: str, objects_only: bool = False) -> object:
    """The first JSON value in a fenced block of `text`, else in `text` itself."""
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        value = _first_value(candidate, objects_only)
        if value is not _MISSING:
            return value
    raise BadOutput("it holds no JSON object" if objects_only else "it holds no JSON value", "json")


def _first_value(text: str, objects_only: bool) -> object:
    decoder = json.JSONDecoder()
    starts = [i for i, char in enumerate(text) if char == "{" or (char == "[" and not objects_only)]
    for start in starts[:_MAX_JSON_STARTS]:
        try:
            return decoder.raw_decode(text, start)[0]
        except (ValueError, RecursionError):
            continue
    if not objects_only:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    return _MISSING


def _mismatch(value: object, schema: dict[str, Any]) -> str | None:
    """Why `value` fails `schema` (the most relevant error), or None when it passes."""
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    try:
        error = best_match(validator.iter_errors(value))
    except (referencing.exceptions.Unresolvable, jsonschema.SchemaError, RecursionError) as exc:  # a $ref to nowhere
        return f"the schema could not be applied ({type(exc).__name__})"
    if error is None:
        return None
    where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{error.message} (at ${where})" if where else error.message
