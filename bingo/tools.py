"""Function tools and JSON output, emulated over a text-only upstream. Pure code.

Neither upstream knows tools or JSON modes, so the gateway asks for them in words and
checks what comes back. Three sides, each usable on its own (the Responses API calls
the same functions with its own list of function tools):

- request: `parse_tools`, `parse_function`, `parse_tool_choice`, `parse_tool_calls`,
  `parse_response_format` validate the client's JSON, raising InvalidRequest naming
  the param;
- prompt: `instructions` tells the model how to call the declared functions and/or
  how to answer in JSON; `render_call` and `render_result` put earlier calls and
  their results into the conversation in the very form the model is asked to use;
- answer: `CallParser` splits the answer, as it streams, into prose and complete
  `<tool_call>` blocks; `check_call` turns a block into a ToolCall, `check_json`
  finds and validates the JSON value of an answer; both raise BadOutput saying what
  is wrong, which `correction` and `failure` turn into words.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.exceptions import best_match

from .errors import InvalidRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_FENCE = re.compile(r"```[\w-]*[ \t]*\n(.*?)```", re.DOTALL)
_MAX_JSON_STARTS = 64  # where a JSON value may begin in an answer: enough for any prose


@dataclass(frozen=True, slots=True)
class Tool:
    """One declared function: what the model may call."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: dict(_NO_PARAMETERS))
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: str  # "none", "auto", "required", or "function" (one named function)
    name: str | None = None  # the function, for mode "function"

    @property
    def forced(self) -> bool:
        """The answer must call a function: prose alone will not do."""
        return self.mode in ("required", "function")


NONE = ToolChoice("none")
AUTO = ToolChoice("auto")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON text, as OpenAI sends it

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: str  # "json_object" or "json_schema" ("text" needs no object)
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False


class BadOutput(ValueError):
    """The model's answer is not what was asked for; the message says why."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # "tool_call" or "json"


# -- request ------------------------------------------------------------------------


def parse_tools(value: object, param: str = "tools") -> tuple[Tool, ...]:
    """Chat Completions' `tools`: function tools only; [] and null mean none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be an array of function tools.", param=param)
    tools = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{where}' must be an object like {{\"type\": \"function\", \"function\": {{...}}}}.", param=where)
        if item.get("type") != "function":
            raise InvalidRequest(f"'{where}.type' must be 'function': this gateway emulates function tools only.", param=f"{where}.type")
        if not isinstance(item.get("function"), dict):
            raise InvalidRequest(f"'{where}.function' must be an object with a 'name'.", param=f"{where}.function")
        tools.append(parse_function(item["function"], f"{where}.function"))
    return _unique(tuple(tools), param)


def parse_function(function: dict[str, Any], param: str) -> Tool:
    """One function definition: name, description, parameters (a JSON Schema), strict."""
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(f"'{param}.name' must be 1 to 64 letters, digits, '_' or '-'.", param=f"{param}.name")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"'{param}.description' must be a string.", param=f"{param}.description")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = dict(_NO_PARAMETERS)
    check_schema(parameters, f"{param}.parameters")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{param}.strict' must be true or false.", param=f"{param}.strict")
    return Tool(name, description or "", parameters, bool(strict))


def check_schema(schema: object, param: str) -> None:
    """Raise InvalidRequest unless `schema` is a JSON Schema object."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"'{param}' must be a JSON Schema object.", param=param)
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(f"'{param}' is not a valid JSON Schema: {exc.message}", param=param) from None


def _unique(tools: tuple[Tool, ...], param: str) -> tuple[Tool, ...]:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.name in seen:
            raise InvalidRequest(f"'{param}' declares the function '{tool.name}' twice.", param=f"{param}[{index}]")
        seen.add(tool.name)
    return tools


def parse_tool_choice(value: object, tools: tuple[Tool, ...], param: str = "tool_choice") -> ToolChoice:
    """none | auto | required | {"type": "function", "function": {"name"}} (or {"name"})."""
    if value is None or value == "auto":
        return AUTO if tools else NONE
    if value == "none":
        return NONE
    if value == "required":
        choice = ToolChoice("required")
    elif isinstance(value, dict) and value.get("type") == "function":
        named = value.get("function")
        name = named.get("name") if isinstance(named, dict) else value.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"'{param}' must name the function: {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.", param=param)
        if name not in {tool.name for tool in tools}:
            raise InvalidRequest(f"'{param}' names '{name}', which is not one of the declared 'tools'.", param=param)
        choice = ToolChoice("function", name)
    else:
        raise InvalidRequest(
            f"'{param}' must be 'none', 'auto', 'required' or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.",
            param=param,
        )
    if not tools:
        raise InvalidRequest(f"'{param}' demands a tool call, but no 'tools' are declared.", param=param)
    return choice


def parse_parallel(value: object, param: str = "parallel_tool_calls") -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{param}' must be true or false.", param=param)
    return value


def parse_tool_calls(value: object, param: str) -> tuple[ToolCall, ...]:
    """An assistant message's earlier `tool_calls`: id, type function, name, arguments."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be an array of tool calls.", param=param)
    calls = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise InvalidRequest(f"'{where}' must be an object with a string 'id'.", param=f"{where}.id")
        if item.get("type", "function") != "function":
            raise InvalidRequest(f"'{where}.type' must be 'function'.", param=f"{where}.type")
        function = item.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequest(f"'{where}.function.name' must be a string.", param=f"{where}.function.name")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise InvalidRequest(f"'{where}.function.arguments' must be a JSON string.", param=f"{where}.function.arguments")
        calls.append(ToolCall(item["id"], function["name"], arguments))
    return tuple(calls)


def parse_response_format(value: object, param: str = "response_format") -> ResponseFormat | None:
    """text (None) | json_object | json_schema with name, schema, strict."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise InvalidRequest(
            f"'{param}' must be {{\"type\": \"text\"}}, {{\"type\": \"json_object\"}} or "
            "{\"type\": \"json_schema\", \"json_schema\": {\"name\", \"schema\"}}.",
            param=param,
        )
    assert isinstance(value, dict)
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not _NAME.fullmatch(spec["name"]):
        raise InvalidRequest(f"'{param}.json_schema' must be an object whose 'name' is 1 to 64 letters, digits, '_' or '-'.", param=param)
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest(f"'{param}.json_schema.schema' must be a JSON Schema object.", param=param)
    try:
        check_schema(schema, f"{param}.json_schema.schema")
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param=param) from None
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{param}.json_schema.strict' must be true or false.", param=param)
    return ResponseFormat("json_schema", spec["name"], schema, bool(strict))


# -- prompt -------------------------------------------------------------------------


def instructions(
    tools: tuple[Tool, ...], choice: ToolChoice = AUTO, parallel: bool = True, response_format: ResponseFormat | None = None,
) -> str:
    """What the model is told about tools and JSON output; "" when there is nothing to say."""
    parts = []
    if tools and choice.mode != "none":
        parts.append(_tool_instructions(tools, choice, parallel))
    if response_format is not None:
        parts.append(_json_instructions(response_format))
    return "\n\n".join(parts)


def _tool_instructions(tools: tuple[Tool, ...], choice: ToolChoice, parallel: bool) -> str:
    listed = "\n".join(
        f"- {tool.name}: {tool.description.strip() or '(no description)'}\n  Arguments (JSON Schema): {_compact(tool.parameters)}"
        for tool in tools
    )
    if choice.mode == "function":
        rule = f"In this answer you must call the function {choice.name}."
    elif choice.mode == "required":
        rule = "In this answer you must call at least one of these functions."
    else:
        rule = "Answer in prose, or call one or more of these functions when that helps."
    many = "You may write several blocks to call several functions." if parallel else "Call at most one function."
    return (
        f"You can call these functions:\n{listed}\n\n"
        "To call a function, write a block of exactly this form (nothing else is taken as a call):\n"
        f'{OPEN}{{"name": "<function name>", "arguments": {{<the arguments as a JSON object>}}}}{CLOSE}\n'
        f"{rule} {many} After a call, stop: the results come back in the next message."
    )


def _json_instructions(response_format: ResponseFormat) -> str:
    if response_format.schema is None:
        return "Answer with one JSON object and nothing else: no prose, no code fence."
    return (
        f"Answer with one JSON value that matches this JSON Schema (named {response_format.name}), "
        f"and nothing else: no prose, no code fence.\nSchema: {_compact(response_format.schema)}"
    )


def render_call(call: ToolCall) -> str:
    """An earlier call, written as the model is asked to write one."""
    try:
        arguments: object = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return f'{OPEN}{{"name": {json.dumps(call.name)}, "arguments": {_compact(arguments)}}}{CLOSE}'


def render_result(call_id: str, name: str | None, content: str) -> str:
    """The result of an earlier call, as the next message the model reads."""
    named = f" of {name}" if name else ""
    return f"Result{named} (call {call_id}):\n{content.strip()}"


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def correction(problem: BadOutput, choice: ToolChoice = AUTO) -> str:
    """The message of the corrective turn: what was wrong, and what to write instead."""
    if problem.kind == "json":
        return f"Your answer was not usable: {problem}. Answer again with the JSON value only."
    target = f"the function {choice.name}" if choice.mode == "function" else "one of the functions"
    return (
        f"Your answer was not usable: {problem}. Answer again, calling {target} with a block of exactly the form "
        f'{OPEN}{{"name": "<function name>", "arguments": {{...}}}}{CLOSE}, arguments matching its schema.'
    )


def failure(problem: BadOutput) -> str:
    """The 502 message once the corrective turn failed too."""
    if problem.kind == "json":
        return f"The model did not answer with the requested JSON, even after a corrective turn: {problem}."
    return f"The model did not make the tool call that tool_choice requires, even after a corrective turn: {problem}."


# -- answer -------------------------------------------------------------------------


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
