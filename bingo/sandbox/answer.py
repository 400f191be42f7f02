"""The sandbox's answers: pure, deterministic functions of the prompt.

Tests assert exact text, so nothing here may depend on time, randomness or state.
No sockets here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .directives import DIRECTIVE, parse_directives, plan_from

CITATION = "[^1^]"
UNICODE_LINE = (
    "Unicode: 😀 你好, café, naïve, Ærøskøbing;\ttab\u2028line\u2029paragraph\nnewline."
)
_FILLER = (
    "- The sandbox streams this text as **cumulative** updates, like Bing did.",
    "Each update repeats everything sent so far; clients must diff.",
    "`answer_for(prompt)` rebuilds the same text for the same prompt.",
    "> Quoted markdown survives the trip through the gateway unchanged.",
    "1. Numbered lists, *emphasis* and `code` are all plain text here.",
)


@dataclass(frozen=True, slots=True)
class Source:
    """The one web source every answer cites as `[^1^]`."""

    title: str
    url: str


def answer_for(
    prompt: str, chars: int | None = None, *, unicode: bool | None = None
) -> str:
    """The answer the sandbox gives to `prompt`, on either protocol.

    It starts with ``"Echo: " + prompt`` (so cross-talk between concurrent turns
    shows), cites `[^1^]`, and is padded to exactly `chars` characters, unless the
    echo and citation alone are longer. `chars` and `unicode` default to the
    prompt's own `[sandbox:chars=N]` / `[sandbox:unicode]` directives, so
    `answer_for(prompt)` is what a turn without queued faults streams.
    """
    plan = plan_from(parse_directives(prompt))
    chars = plan.chars if chars is None else chars
    unicode = plan.unicode if unicode is None else unicode
    head = f"Echo: {prompt}\n\n"
    if unicode:
        head += UNICODE_LINE + "\n\n"
    head += f"This answer comes from the bingo sandbox {CITATION}."
    if len(head) >= chars:
        return head
    text = (head + _padding(chars - len(head)))[:chars]
    # A cut that lands on whitespace would make the answer look stripped by mistake.
    return text[:-1] + "." if text[-1].isspace() else text


def _padding(needed: int) -> str:
    parts: list[str] = []
    size, index = 0, 0
    while size < needed:
        sentence = ("\n\n" if index % 2 == 0 else " ") + _FILLER[index % len(_FILLER)]
        parts.append(sentence)
        size += len(sentence)
        index += 1
    return "".join(parts)


def prefixes(text: str, count: int) -> list[str]:
    """`count` growing prefixes of `text` (fewer if it is shorter); the last is `text`."""
    cuts = sorted({round(len(text) * i / count) for i in range(1, count + 1)} - {0})
    return [text[:cut] for cut in cuts]


def source_for(prompt: str) -> Source:
    """The cited source; its URL depends on the prompt so citations cannot mix."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
    return Source(
        title="Bingo sandbox reference", url=f"https://example.com/sandbox/{digest}"
    )


def search_query_for(prompt: str) -> str:
    """The query shown in the "Searching the web for" progress message."""
    words = " ".join(DIRECTIVE.sub(" ", prompt).split())
    return words[:60] or "bingo sandbox"


def suggestions_for(prompt: str) -> list[str]:
    """Three follow-up suggestions, as `suggestedResponses` / `suggestedFollowups`."""
    topic = search_query_for(prompt)[:30]
    return [
        f"Tell me more about {topic}",
        "Give me an example.",
        "What are your sources?",
    ]


def title_for(prompt: str) -> str:
    """A chat title for Copilot's `titleUpdate`."""
    return search_query_for(prompt)[:40]
