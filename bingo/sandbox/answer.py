"""The sandbox's answers: pure, deterministic functions of the prompt.

Tests assert exact text, so nothing here may depend on time, randomness or state.
No sockets here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .directives import (
    COPILOT_TURN,
    DIRECTIVE,
    Plan,
    parse_directives,
    plan_from,
    scripted_reply,
)

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
    `answer_for(prompt)` is what a turn without queued faults streams. A
    `[sandbox:reply=...]` or `[sandbox:replies=...]` directive replaces it all.
    """
    plan = plan_from(parse_directives(prompt))
    if plan.replies:
        return scripted_reply(plan.replies, prompt)
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


@dataclass(frozen=True, slots=True)
class CopilotAnswer:
    """Exactly what a Copilot turn streams for a prompt, as offsets into `text`.

    `cuts` are the lengths of the text sent after each appendText (the last is
    len(text)); each `citations` entry is (offset, source): the citation event
    arrives right after the appendText whose cut is `offset`. `image_at` is the
    cut after which the image events come (None: no image); an image-only turn
    has empty text and image_at == 0.
    """

    text: str
    cuts: tuple[int, ...]
    citations: tuple[tuple[int, Source], ...]
    image_at: int | None = None


def copilot_answer_for(prompt: str) -> CopilotAnswer:
    """What the Copilot side streams for `prompt` with no queued fault.

    The text is `answer_for(prompt)` without its `[^1^]` marker; by default one
    citation of `source_for(prompt)` arrives right where the marker was, so the
    gateway's answer equals the ChatHub's (`[^1]` there, its definition at the end).
    `[sandbox:citations=N]` adds N-1 more, spread over the rest of the text
    (distinct offsets while the text has room), with the last one repeating the
    first URL; `[sandbox:image]` puts the image at the middle cut.
    """
    return copilot_answer(
        prompt, plan_from(parse_directives(prompt), None, COPILOT_TURN)
    )


def copilot_answer(prompt: str, plan: Plan) -> CopilotAnswer:
    """`copilot_answer_for` for a plan that may include a queued fault."""
    if plan.image == "only":
        return CopilotAnswer("", (), (), 0)
    if plan.replies:  # scripted: exactly that text, citing nothing
        text = scripted_reply(plan.replies, prompt)
        return CopilotAnswer(text, tuple(len(p) for p in prefixes(text, plan.updates)), ())
    # Copilot's text carries no Bing-style marker: the `citation` event itself
    # marks the spot, arriving right where answer_for() has its `[^1^]`.
    full = answer_for(prompt, plan.chars, unicode=plan.unicode)
    marked = full.find(CITATION)
    text = full.replace(CITATION, "", 1) if marked >= 0 else full
    cuts = [len(p) for p in prefixes(text, plan.updates)]
    first = marked if marked >= 0 else len(text)
    offsets = [first] + [
        first + round((len(text) - first) * k / (plan.citations - 1))
        for k in range(1, plan.citations)
    ]
    sources = _sources(prompt, plan.citations)
    image_at = None
    if plan.image == "inline":
        middle = [c for c in cuts if 0 < c < len(text)]
        image_at = middle[(len(middle) - 1) // 2] if middle else len(text) // 2
    every = sorted(set(cuts) | set(offsets[: plan.citations]) | {image_at or len(text)})
    return CopilotAnswer(text, tuple(every), tuple(zip(offsets, sources)), image_at)


def _sources(prompt: str, count: int) -> list[Source]:
    """`count` sources: the first is source_for(prompt), the last (of 2+) repeats it."""
    first = source_for(prompt)
    middle = [
        Source(f"{first.title} {k + 1}", f"{first.url}/{k + 1}")
        for k in range(1, count - 1)
    ]
    if count < 2:
        return [first][:count]
    return [first, *middle, first]


def image_prompt_for(prompt: str) -> str:
    """The prompt Copilot says it draws in `generatingImage`."""
    return f"A sandbox picture of {search_query_for(prompt)[:60]}"


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
