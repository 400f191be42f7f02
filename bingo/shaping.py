"""Shape the answer text identically in both modes: citations and stop sequences.

Streaming and one-shot responses run the same AnswerShaper over the same deltas, so
the joined stream equals the one-shot body byte for byte. A marker or stop sequence
may be split across deltas; the shaper holds back just the tail that could still
become one, never the whole answer.
"""
from __future__ import annotations

import re

from .events import Source

_MARKER = re.compile(r"\[\^(\d+)\^\]")  # Bing's citation marker, [^1^]
_PARTIAL_MARKER = re.compile(r"\[(?:\^(?:\d+\^?)?)?$")


class AnswerShaper:
    """Rewrites `[^n^]` to markdown footnotes `[^n]` and cuts at the first stop."""

    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._stop = stop
        self._held = ""  # a tail that may still become a citation marker
        self._stop_held = ""  # a tail that may still become a stop sequence
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` that is safe to send now."""
        if self.stopped:
            return ""
        buffer = _MARKER.sub(r"[^\1]", self._held + text)
        partial = _PARTIAL_MARKER.search(buffer)
        cut = partial.start() if partial else len(buffer)
        ready, self._held = buffer[:cut], buffer[cut:]
        return self._scan(ready)

    def finish(self, sources: tuple[Source, ...] = ()) -> str:
        """Flush what was held back, then the footnote definitions for the sources."""
        if self.stopped:
            return ""
        tail, self._held = self._held, ""
        return self._scan(tail + footnotes(sources), final=True)

    def _scan(self, ready: str, final: bool = False) -> str:
        """Cut at a stop sequence; hold back a tail that may start one."""
        if not self._stop:
            return ready
        pending = self._stop_held + ready
        hits = [i for i in (pending.find(s) for s in self._stop) if i >= 0]
        if hits:
            self.stopped = True
            self._stop_held = ""
            return pending[: min(hits)]
        keep = 0 if final else _longest_stop_prefix(pending, self._stop)
        self._stop_held = pending[len(pending) - keep:] if keep else ""
        return pending[: len(pending) - keep]


def _longest_stop_prefix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that begins some stop sequence."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best


def footnotes(sources: tuple[Source, ...]) -> str:
    """Markdown footnote definitions for Bing's sources, numbered as Bing cites them."""
    if not sources:
        return ""
    lines = [f"[^{n}]: [{_escape(s.title)}]({s.url.replace(')', '%29')})" for n, s in enumerate(sources, 1)]
    return "\n\n" + "\n".join(lines)


def _escape(title: str) -> str:
    return title.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
