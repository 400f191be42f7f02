"""Shape the answer text identically in both modes: citations and stop sequences.

Streaming and one-shot responses run the same AnswerShaper over the same events, so
the joined stream equals the one-shot body byte for byte. A marker or stop sequence
may be split across deltas; the shaper holds back just the tail that could still
become one, never the whole answer.

Citations become markdown footnotes, and a definition is written only for a source
the text references: Bing's `[^n^]` markers become `[^n]` (unreferenced sources are
dropped, an answer without markers is left as Bing wrote it); a Copilot `citation`
event becomes `[^n]` where it arrives, the same URL keeping its number.
"""
from __future__ import annotations

import re

from .upstream.events import Source

_MARKER = re.compile(r"\[\^(\d+)\^\]")  # Bing's citation marker, [^1^]
_PARTIAL_MARKER = re.compile(r"\[(?:\^(?:\d+\^?)?)?$")


class AnswerShaper:
    """Rewrites `[^n^]` to markdown footnotes `[^n]` and cuts at the first stop."""

    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._stop = stop
        self._held = ""  # a tail that may still become a citation marker
        self._stop_held = ""  # a tail that may still become a stop sequence
        self._referenced: set[int] = set()  # ChatHub marker numbers seen in the text
        self._cited: dict[str, int] = {}  # Copilot: url -> footnote number
        self._cited_sources: list[Source] = []
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` that is safe to send now."""
        if self.stopped:
            return ""
        buffer = self._held + text
        if "[" not in buffer:  # the common case: no marker can start here
            self._held = ""
            return self._scan(buffer)
        buffer = _MARKER.sub(self._rewrite_marker, buffer)
        partial = _PARTIAL_MARKER.search(buffer)
        cut = partial.start() if partial else len(buffer)
        ready, self._held = buffer[:cut], buffer[cut:]
        return self._scan(ready)

    def _rewrite_marker(self, match: re.Match[str]) -> str:
        self._referenced.add(int(match.group(1)))
        return f"[^{match.group(1)}]"

    def cite(self, source: Source) -> str:
        """The footnote reference for a source cited here; a repeated URL keeps its number."""
        number = self._cited.get(source.url)
        if number is None:
            self._cited_sources.append(source)
            number = self._cited[source.url] = len(self._cited_sources)
        return self.feed(f"[^{number}]")

    def finish(self, sources: tuple[Source, ...] = ()) -> str:
        """Flush what was held back, then the definitions of the referenced sources.

        `sources` are the ChatHub's, numbered from 1 as its markers count them.
        """
        if self.stopped:
            return ""
        tail, self._held = self._held, ""
        numbered = [(n, s) for n, s in enumerate(sources, 1) if n in self._referenced]
        numbered += list(enumerate(self._cited_sources, 1))
        return self._scan(tail + footnotes(numbered), final=True)

    def _scan(self, ready: str, final: bool = False) -> str:
        """Cut at the earliest stop sequence; hold back a tail that may start one.

        A complete stop is only acted on when no longer stop could still begin
        before it, so the cut never depends on how the text was split.
        """
        if not self._stop:
            return ready
        pending = self._stop_held + ready
        hits = [i for i in (pending.find(s) for s in self._stop) if i >= 0]
        cut = min(hits) if hits else None
        hold = None if final else _first_open_prefix(pending, self._stop)
        if cut is not None and (hold is None or hold >= cut):
            self.stopped = True
            self._stop_held = ""
            return pending[:cut]
        hold = len(pending) if hold is None else hold
        self._stop_held = pending[hold:]
        return pending[:hold]


def _first_open_prefix(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the earliest suffix of `text` that could still grow into a stop begins."""
    longest = max(len(stop) for stop in stops)
    for start in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[start:]
        if any(len(tail) < len(stop) and stop.startswith(tail) for stop in stops):
            return start
    return None


def footnotes(numbered: list[tuple[int, Source]]) -> str:
    """Markdown footnote definitions, one per (number, source)."""
    if not numbered:
        return ""
    lines = [f"[^{n}]: [{_escape(s.title)}]({s.url.replace(')', '%29')})" for n, s in numbered]
    return "\n\n" + "\n".join(lines)


def _escape(title: str) -> str:
    return title.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
