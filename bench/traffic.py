"""The traffic both sides read: prompts carrying sandbox directives, and the answers
each side must produce for them, exactly.

Every stream gets its own prompt, and the sandbox echoes the prompt at the start of
the answer, so an answer that reached the wrong client cannot pass as intact.
"""

from __future__ import annotations

import json

from bingo.sandbox import answer_for, copilot_answer_for, source_for

from .options import Options

MODEL = "Creative"  # tone Creative, web search on: progress messages come first
PATH = "/v1/chat/completions"


def prompt_for(tag: str, options: Options, *, slow_first: float = 0.0) -> str:
    """A unique prompt for one stream: ~2,000 chars in ~100 cumulative updates."""
    directives = [
        f"[sandbox:chars={options.chars}]",
        f"[sandbox:updates={options.updates}]",
        f"[sandbox:delay={options.delay:g}]",
    ]
    if slow_first:
        directives.append(f"[sandbox:slow-first={slow_first:g}]")
    return f"bench {tag} " + " ".join(directives)


def direct_answer(prompt: str, protocol: str = "chathub") -> str:
    """What a reader gets as text: the sandbox's, verbatim (on Copilot the citation is an
    event of its own, so the text has no marker)."""
    return copilot_answer_for(prompt).text if protocol == "copilot" else answer_for(prompt)


def gateway_answer(prompt: str) -> str:
    """What the gateway streams, on either protocol: citations as markdown footnotes,
    sources appended."""
    source = source_for(prompt)
    return (
        answer_for(prompt).replace("[^1^]", "[^1]")
        + f"\n\n[^1]: [{source.title}]({source.url})"
    )


def request_bytes(prompt: str, port: int) -> bytes:
    """One streamed chat completion, HTTP/1.1, closing the connection at the end."""
    body = json.dumps(
        {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        }
    ).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
