"""Read Bing's answer out of ChatHub records: cumulative updates in, deltas out.

Pure code. ChatHub repeats the whole answer in every type-1 update and again in the
type-2 final, whose text is the ground truth. Captured traffic shows the traps this
module exists for: the answer may exist only in the final; `result.message` may be the
search query rather than the answer; the answer is not always the last message; the
final's text may lose trailing white space; Bing may replace an answer by an apology.
"""
from __future__ import annotations

from ...errors import UpstreamError
from ..events import Delta, Event, Finish, Progress, Source
from ..failures import for_result

LIMIT_ORIGINS = ("TurnLimiter",)
LIMIT_TYPES = ("Disengaged",)


class AnswerTracker:
    """Turns one turn's updates and final into Delta/Progress/Finish events."""

    def __init__(self) -> None:
        self.sent = ""  # answer text already handed on
        self._answer_id: str | None = None
        self._progress: set[tuple[str, str]] = set()
        self._filtered = ""  # why the answer ends as content_filter, if it does
        self._sources: tuple[Source, ...] = ()
        self._suggestions: tuple[str, ...] = ()
        self._raw_extras: tuple[object, object] = (None, None)  # the last update's, as sent

    def on_update(self, argument: dict) -> list[Event]:
        """Events for one type-1 `update` argument (it may carry no messages)."""
        events: list[Event] = []
        for message in argument.get("messages") or ():
            if isinstance(message, dict) and message.get("author") == "bot":
                events += self._on_message(message)
        return events

    def on_final(self, item: dict) -> list[Event]:
        """Events for the type-2 final, ending with a Finish; raises on error results."""
        result = item.get("result")
        result = result if isinstance(result, dict) else {}
        value = result.get("value", "Success")
        if value != "Success":
            raise for_result(str(value), str(result.get("message") or result.get("error") or ""))
        messages = [m for m in item.get("messages") or () if isinstance(m, dict) and m.get("author") == "bot"]
        events: list[Event] = []
        for message in messages:
            if (message.get("messageType") or "") in LIMIT_TYPES:
                events += self._on_message(message)
        answer = self._final_answer(messages)
        if answer is not None:
            events += self._on_message(answer, final=True)
        if not self.sent:
            raise UpstreamError("Bing finished the turn without an answer. Try again or rephrase the question.")
        reason = "content_filter" if self._filtered else "stop"
        return events + [Finish(reason, self._sources, self._suggestions, self._filtered)]

    def _on_message(self, message: dict, final: bool = False) -> list[Event]:
        kind = message.get("messageType") or ""
        text = answer_text(message)
        if kind in LIMIT_TYPES or message.get("contentOrigin") in LIMIT_ORIGINS:
            return self._filter(f"Bing ended the conversation ({kind or 'TurnLimiter'})", text)
        if kind:
            return self._on_progress(kind, message)
        if message.get("contentOrigin") == "Apology":
            return self._filter("Bing retracted its answer (Apology)", text)
        if self._answer_id is None:
            self._answer_id = message.get("messageId")
        elif message.get("messageId") != self._answer_id and not final:
            return []  # another answer-shaped card (ads, follow-ups): not this answer
        self._collect_extras(message)
        return self._diff(text, final)

    def _on_progress(self, kind: str, message: dict) -> list[Event]:
        text = answer_text(message) or str(message.get("hiddenText") or "")
        key = (str(message.get("messageId")), text)
        if key in self._progress:
            return []
        self._progress.add(key)
        return [Progress(kind, text)]

    def _filter(self, why: str, text: str) -> list[Event]:
        """End the answer as content_filter; the first reason given is kept."""
        if self._filtered:
            return []
        self._filtered = why
        events: list[Event] = [Progress("retraction", why)]
        # With nothing said yet, Bing's own refusal or limit text is the best answer.
        if not self.sent and text:
            self.sent = text
            events.append(Delta(text))
        return events

    def _diff(self, text: str, final: bool) -> list[Event]:
        if self._filtered or not text:
            return []
        # Trailing white space waits for the next word: the final text may drop it,
        # and what was streamed can never be taken back.
        text = text if final else text.rstrip()
        if not final and text and "\ud800" <= text[-1] <= "\udbff":
            # Half a surrogate pair: Bing's UTF-16 text was cut mid-character; the
            # next update restates it whole, so wait for it rather than send half.
            text = text[:-1]
        if text.startswith(self.sent):
            new, self.sent = text[len(self.sent):], text
            return [Delta(new)] if new else []
        if self.sent.startswith(text) or text.rstrip() == self.sent.rstrip():
            return []  # a lagging update, or the final minus trailing white space
        # Bing rewrote text it had already streamed; it cannot be unsent, so stop here.
        return self._filter("Bing rewrote its answer mid-stream", "")

    def _collect_extras(self, message: dict) -> None:
        # Every update restates both lists; parse them only when they changed.
        raw = (message.get("sourceAttributions"), message.get("suggestedResponses"))
        if raw == self._raw_extras:
            return
        self._raw_extras = raw
        sources = tuple(_sources(raw[0]))
        if sources:
            self._sources = sources
        suggestions = tuple(_suggestions(raw[1]))
        if suggestions:
            self._suggestions = suggestions

    def _final_answer(self, messages: list[dict]) -> dict | None:
        answers = [m for m in messages if not m.get("messageType")]
        for message in answers:
            if self._answer_id is not None and message.get("messageId") == self._answer_id:
                return message
        # No id match (or nothing streamed): the last answer-shaped message; the diff
        # then refuses anything that does not continue what was already sent.
        return answers[-1] if answers else None


def answer_text(message: dict) -> str:
    """A message's markdown: its `text`, else the first TextBlock of its cards."""
    text = message.get("text")
    if isinstance(text, str) and text:
        return text
    for card in message.get("adaptiveCards") or ():
        for block in (card or {}).get("body") or ():
            if isinstance(block, dict) and block.get("type") == "TextBlock" and isinstance(block.get("text"), str):
                return block["text"]  # body[0] may be an Image: skip to the text
    return ""


def _sources(raw: object) -> list[Source]:
    found = []
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, dict) and isinstance(item.get("seeMoreUrl"), str):
            title = item.get("providerDisplayName") or item["seeMoreUrl"]
            found.append(Source(str(title), item["seeMoreUrl"]))
    return found


def _suggestions(raw: object) -> list[str]:
    return [s["text"] for s in raw if isinstance(s, dict) and isinstance(s.get("text"), str)] if isinstance(raw, list) else []
