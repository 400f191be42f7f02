"""Drive one Responses API request: the opened turn, shaped as chat shapes it, as events.

The answer goes through relay's `Answer` (the same AnswerShaper as chat, so the text
is chat's text; the same tool-call and JSON checks, with the same corrective turn)
and through one event builder whichever the mode: a stream writes the events, a
one-shot request keeps only the final response. Either way the output text equals
the joined `response.output_text.delta` events, and each tool call is one
`function_call` item between the prose around it. Failures before the
first byte raise (real HTTP statuses); after it they become an `error` event and
then `response.failed`. Every path closes the turn. No Flask here.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from . import sse
from .answer import Answer
from .config import Settings
from .errors import BingoError
from .relay import TurnRelay
from .responses_wire import (
    ResponsesRequest,
    build_function_call,
    build_message,
    build_reasoning,
    build_response,
    build_text_part,
    build_usage,
    history_rows,
    new_id,
    now,
)
from .store import ResponseStore
from .tools import ToolCall
from .upstream.events import Event, Reasoning
from .wire import ChatRequest, Message

log = logging.getLogger(__name__)

# How an upstream ending that is not "stop" shows: response.incomplete's reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponseRun(TurnRelay):
    """One `POST /v1/responses` from the opened turn to the stored response."""

    def __init__(
        self, request: ResponsesRequest, messages: tuple[Message, ...], history: tuple[Message, ...],
        settings: Settings, request_id: str, store: ResponseStore,
    ) -> None:
        super().__init__(settings, request_id, request.model, messages)
        self.request = request
        self.id = new_id("resp")
        self.created_at = now()
        self.body: dict[str, Any] | None = None  # the final response, once there is one
        self._history = history
        self._store = store
        # max_output_tokens is chat's max_tokens: Answer cuts at the same estimate;
        # function tools and text.format are chat's tools and response_format.
        self._chat = ChatRequest(
            kind="chat", model_name=request.model_name, model=request.model, messages=messages,
            max_tokens=request.max_output_tokens, tools=request.declared, tool_choice=request.choice,
            parallel_tool_calls=request.parallel_tool_calls, response_format=request.response_format,
        )
        self._answer = Answer(self._chat)
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # finished items, in output order
        self._reasoning: list[str] | None = None  # the open reasoning item's text
        self._reasoning_id = new_id("rs")
        self._text: list[str] | None = None  # the open message item's text
        self._message_id = new_id("msg")  # the open (or next) message item's id
        self._answered = False  # a message or function_call item has begun

    def _settled(self) -> bool:
        """Finished and right (the body is built); a wrong answer gets the corrective turn."""
        return self._settle(self._answer, self.request.choice)

    def _result(self) -> dict[str, Any]:
        assert self.body is not None, "collected to the end"
        return self.body

    def _preamble(self) -> str:
        """response.created and response.in_progress, numbered before the first output."""
        snapshot = self._snapshot("in_progress")
        return self._emit("response.created", response=snapshot) + self._emit("response.in_progress", response=snapshot)

    def _log(self, outcome: str) -> None:
        log.info(
            "request %s response model=%r upstream=%s account=%s stream=%s outcome=%s status=%s seconds=%.2f",
            self.request_id, self.request.model_name, self.request.model.upstream, self.account, self.request.stream, outcome,
            self.body["status"] if self.body else None, time.monotonic() - self._started,
        )

    # -- the event builder ---------------------------------------------------------

    def _render(self, event: Event) -> str:
        out = ""
        for piece in self._answer.add(event):
            if isinstance(piece, Reasoning):
                if not self._answered:  # reasoning after the answer began is not shown
                    out += self._reason(piece.text)
            elif isinstance(piece, ToolCall):
                out += self._call(piece)
            elif piece:
                out += self._say(piece)
        if self._answer.finish_reason and self._answer.problem is None:
            out += self._finish()
        return out

    def _reason(self, text: str) -> str:
        out = ""
        if self._reasoning is None:
            self._reasoning = []
            out += self._emit("response.output_item.added", output_index=len(self._output),
                              item=build_reasoning(self._reasoning_id, None, "in_progress"))
            out += self._emit("response.reasoning_summary_part.added", **self._at(self._reasoning_id), summary_index=0,
                              part={"type": "summary_text", "text": ""})
        self._reasoning.append(text)
        return out + self._emit("response.reasoning_summary_text.delta", **self._at(self._reasoning_id),
                                summary_index=0, delta=text)

    def _close_reasoning(self) -> str:
        if self._reasoning is None:
            return ""
        text, self._reasoning = "".join(self._reasoning), None
        where = self._at(self._reasoning_id)
        item = build_reasoning(self._reasoning_id, text, "completed")
        out = (self._emit("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
               + self._emit("response.reasoning_summary_part.done", **where, summary_index=0, part=item["summary"][0])
               + self._emit("response.output_item.done", output_index=where["output_index"], item=item))
        self._output.append(item)
        return out

    def _say(self, text: str) -> str:
        if self._text is None and self._answered:
            # Prose after a call is a message item of its own: it starts at its first word.
            text = text.lstrip()
            if not text:
                return ""
        out = self._open_message()
        self._text.append(text)  # type: ignore[union-attr]  # opened just above
        return out + self._emit("response.output_text.delta", **self._at(self._message_id), content_index=0,
                                delta=text, logprobs=[])

    def _call(self, call: ToolCall) -> str:
        """One whole function_call item: added, its arguments in one delta, done."""
        out = self._close_reasoning() + self._close_message("completed")
        self._answered = True
        item_id = new_id("fc")
        where = self._at(item_id)
        item = build_function_call(item_id, call, "completed")
        out += (self._emit("response.output_item.added", output_index=where["output_index"],
                           item=build_function_call(item_id, call, "in_progress"))
                + self._emit("response.function_call_arguments.delta", **where, delta=call.arguments)
                + self._emit("response.function_call_arguments.done", **where, arguments=call.arguments)
                + self._emit("response.output_item.done", output_index=where["output_index"], item=item))
        self._output.append(item)
        return out

    def _open_message(self) -> str:
        if self._text is not None:
            return ""
        out = self._close_reasoning()
        self._text = []
        self._answered = True
        out += self._emit("response.output_item.added", output_index=len(self._output),
                          item=build_message(self._message_id, None, "in_progress"))
        return out + self._emit("response.content_part.added", **self._at(self._message_id), content_index=0,
                                part=build_text_part(""))

    def _close_message(self, status: str) -> str:
        if self._text is None:
            return ""
        where = self._at(self._message_id)
        text, self._text = "".join(self._text), None
        item = build_message(self._message_id, text, status)
        out = (self._emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
               + self._emit("response.content_part.done", **where, content_index=0, part=item["content"][0])
               + self._emit("response.output_item.done", output_index=where["output_index"], item=item))
        self._output.append(item)
        self._message_id = new_id("msg")  # prose after a call is the next message item
        return out

    def _finish(self) -> str:
        """Close what is open (an answer with no call always has a message), build and store the body."""
        out = self._close_reasoning()
        if not self._answered:
            out += self._open_message()
        incomplete = _INCOMPLETE.get(self._answer.finish_reason or "stop")
        out += self._close_message("incomplete" if incomplete else "completed")
        text = "".join(part["text"] for i in self._output if i["type"] == "message" for part in i["content"])
        reasoning = "".join(i["summary"][0]["text"] for i in self._output if i["type"] == "reasoning" and i["summary"])
        self.body = build_response(
            self.request, self.id, self.created_at, status="incomplete" if incomplete else "completed",
            output=self._output, usage=build_usage(self._messages, self._answer.text, reasoning), incomplete=incomplete,
        )
        if self.request.store:
            answer = Message("assistant", text, tool_calls=self._answer.calls)
            history = history_rows((*self._history, *self.request.input, answer))
            self._store.put(self.id, {"response": self.body, "history": history})
        return out + self._emit(f"response.{self.body['status']}", response=self.body)

    def _failed(self, exc: BingoError) -> str:
        error = {"code": exc.code or "server_error", "message": exc.message}
        body = build_response(self.request, self.id, self.created_at, status="failed", output=self._output, error=error)
        return (self._emit("error", code=exc.code, message=exc.message, param=exc.param)
                + self._emit("response.failed", response=body))

    def _snapshot(self, status: str) -> dict[str, Any]:
        return build_response(self.request, self.id, self.created_at, status=status, output=[])

    def _at(self, item_id: str) -> dict[str, Any]:
        """Where an open item's events point: its id and its place in the output."""
        return {"item_id": item_id, "output_index": len(self._output)}

    def _emit(self, kind: str, **fields: Any) -> str:
        """One SSE event with the next sequence number; "" for a one-shot request."""
        number, self._seq = self._seq, self._seq + 1
        if self._quiet:
            return ""
        return f"event: {kind}\ndata: {sse.dumps({'type': kind, 'sequence_number': number, **fields})}\n\n"
