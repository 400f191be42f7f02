"""The answer as the client sees it, shaped the same way in both modes.

One Answer per upstream turn reads its events and hands on what may be sent now:
text, reasoning, and whole tool calls. The text passes through the AnswerShaper
(citations, stop sequences), then the max_tokens budget, then the request's form:
plain text; prose and `<tool_call>` blocks (tools); or one JSON value (response_format).
Whatever a stream sends, the one-shot body holds the same, joined. No I/O here.
"""
from __future__ import annotations

from .shaping import AnswerShaper
from .tool_output import Block, CallParser, check_call, check_json
from .tools import BadOutput, ResponseFormat, Tool, ToolCall, ToolChoice
from .upstream.events import Citation, Delta, Event, Finish, Reasoning
from .wire import ChatRequest, calls_tools

Piece = str | Reasoning | ToolCall  # answer text, reasoning, a whole tool call


class Answer:
    """Shaped text, reasoning, tool calls, and how the turn ended."""

    def __init__(self, chat: ChatRequest) -> None:
        self._chat = chat
        self._reasoning: list[str] = []
        self.restart()

    def restart(self) -> None:
        """Start over for a corrective turn; the reasoning shown so far stays."""
        chat = self._chat
        self._shaper = AnswerShaper(chat.stop)
        self._budget = Budget(chat.max_tokens)
        self._form: PlainForm | ToolForm = PlainForm()
        if calls_tools(chat) or chat.response_format is not None:
            tools = chat.tools if calls_tools(chat) else ()
            self._form = ToolForm(tools, chat.tool_choice, chat.parallel_tool_calls, chat.response_format)
        self._pieces: list[str] = []  # joined once at the end: no quadratic `+=`
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        """What the model wrote, after citations, stop and max_tokens: what usage counts."""
        return "".join(self._pieces)

    @property
    def content(self) -> str | None:
        return self._form.content(self.text)

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(self._form.calls)

    @property
    def problem(self) -> BadOutput | None:
        """Why a finished answer is not what was asked for; None when it is."""
        return self._form.problem

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def add(self, event: Event) -> list[Piece]:
        """Shape one event into what may be sent now, in order."""
        if isinstance(event, Reasoning):
            self._reasoning.append(event.text)
            return [event]
        reason = None
        if isinstance(event, Finish):
            piece = self._shaper.finish(event.sources)
            reason = event.reason
        elif isinstance(event, Delta):
            piece = self._shaper.feed(event.text)
        elif isinstance(event, Citation):
            piece = self._shaper.cite(event.source)
        else:
            return []  # progress: not answer text
        if self._shaper.stopped:
            reason = "stop"
        piece, cut = self._budget.take(piece)
        if cut:
            reason = "length"
        self._pieces.append(piece)
        out = self._form.feed(piece) if piece else []
        if reason:
            out += self._form.finish(checked=reason != "length")
            self.finish_reason = "tool_calls" if self._form.calls and reason == "stop" else reason
        return out


class Budget:
    """max_tokens by the estimate usage uses: one token per four UTF-8 bytes."""

    def __init__(self, tokens: int | None) -> None:
        self._left = None if tokens is None else 4 * tokens

    def take(self, text: str) -> tuple[str, bool]:
        """The part of `text` within the budget, and whether the answer was cut."""
        if self._left is None or not text:
            return text, False
        data = text.encode("utf-8")
        if len(data) <= self._left:
            self._left -= len(data)
            return text, False
        kept = data[: self._left].decode("utf-8", "ignore")  # never half a character
        self._left = 0
        return kept, True


class PlainForm:
    """Plain text: every piece leaves as it comes."""

    calls: tuple[ToolCall, ...] = ()
    problem: BadOutput | None = None

    def feed(self, text: str) -> list[Piece]:
        return [text]

    def finish(self, checked: bool) -> list[Piece]:
        return []

    def content(self, text: str) -> str:
        return text


class ToolForm:
    """Prose and tool calls, or one JSON value: held back until it is known to be right.

    Blocks are parsed only when tools are given. Prose is held while the answer may
    still turn out wrong: until the first call when a call is required, until the
    end in JSON mode (where the JSON found in the prose becomes the content). The
    prose is trimmed as a whole: no leading or trailing whitespace around blocks.
    """

    def __init__(
        self, tools: tuple[Tool, ...], choice: ToolChoice, parallel: bool, response_format: ResponseFormat | None,
    ) -> None:
        self._tools, self._choice, self._parallel, self._format = tools, choice, parallel, response_format
        self._parser = CallParser() if tools else None
        self._holding = choice.forced or response_format is not None
        self._held: list[str] = []
        self._shown: list[str] = []
        self._blank = ""  # whitespace that only counts once more prose follows
        self._problems: list[BadOutput] = []
        self.calls: list[ToolCall] = []
        self.problem: BadOutput | None = None

    def feed(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        for item in self._parser.feed(text) if self._parser else [text]:
            call = self._call(item) if isinstance(item, Block) else None
            if call is not None:
                out += self._release()
                out.append(call)
            else:
                out += self._say(item.raw if isinstance(item, Block) else item)
        return out

    def finish(self, checked: bool) -> list[Piece]:
        out: list[Piece] = []
        for item in self._parser.finish() if self._parser else []:
            out += self._say(item.raw if isinstance(item, Block) else item)
        if self.calls or not self._holding or not checked:
            return out + self._release()
        if self._choice.forced:
            self.problem = self._problems[0] if self._problems else BadOutput("it holds no <tool_call> block", "tool_call")
            return []
        assert self._format is not None
        try:
            self._held = [check_json("".join(self._held), self._format)]
        except BadOutput as exc:
            self.problem = exc
            return []
        return self._release()

    def content(self, text: str) -> str | None:
        return "".join(self._shown) or None

    def _call(self, block: Block) -> ToolCall | None:
        if self.calls and not self._parallel:
            return None  # one call per answer: later blocks stay prose
        try:
            call = check_call(block.body, self._tools, self._choice.name)
        except BadOutput as exc:
            self._problems.append(exc)
            return None
        self.calls.append(call)
        return call

    def _say(self, text: str) -> list[Piece]:
        if not text.strip():
            self._blank += text
            return []
        body = text.rstrip()
        body = self._blank + body if self._held or self._shown else (self._blank + body).lstrip()
        self._blank = text[len(text.rstrip()):]
        if self._holding:
            self._held.append(body)
            return []
        self._shown.append(body)
        return [body]

    def _release(self) -> list[Piece]:
        self._holding = False
        held, self._held = "".join(self._held), []
        if not held:
            return []
        self._shown.append(held)
        return [held]
