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
- answer (`tool_output.py`): what the model wrote, parsed and checked; problems are
  BadOutput, which `correction` and `failure` here turn into words.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from .errors import InvalidRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


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


def parse_tools(value: object, param: str = "tools", *, flat: bool = False) -> tuple[Tool, ...]:
    """`tools`: function tools only; [] and null mean none.

    Chat Completions nests the definition (`{"type": "function", "function": {...}}`);
    the Responses API puts it flat in the item (`flat=True`).
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be an array of function tools.", param=param)
    shape = '"name": ...' if flat else '"function": {...}'
    tools = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{where}' must be an object like {{\"type\": \"function\", {shape}}}.", param=where)
        if item.get("type") != "function":
            raise InvalidRequest(f"'{where}.type' must be 'function': this gateway emulates function tools only.", param=f"{where}.type")
        if flat:
            tools.append(parse_function(item, where))
            continue
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
