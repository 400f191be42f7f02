"""AnswerShaper: citation markers and stop sequences, however the text is split."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bingo.upstream.events import Source
from bingo.shaping import AnswerShaper, footnotes


def shape(
    pieces: list[str], stop: tuple[str, ...] = (), sources: tuple[Source, ...] = ()
) -> str:
    """Feed the pieces in order, then finish: everything the client would receive."""
    shaper = AnswerShaper(stop)
    return "".join(shaper.feed(piece) for piece in pieces) + shaper.finish(sources)


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


def reference_markers(text: str) -> str:
    return re.sub(r"\[\^(\d+)\^\]", r"[^\1]", text)


# -- citation markers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See [^1^].", "See [^1]."),
        ("Two[^1^][^2^] cites.", "Two[^1][^2] cites."),
        ("Big [^123^] number", "Big [^123] number"),
        ("[^1^] first", "[^1] first"),
        ("ends with [^7^]", "ends with [^7]"),
        ("already [^1] markdown", "already [^1] markdown"),
        ("not a [^a^] marker", "not a [^a^] marker"),
        ("empty [^^] marker", "empty [^^] marker"),
        ("arr[1] and x^2", "arr[1] and x^2"),
        ("plain text", "plain text"),
    ],
    ids=[
        "one",
        "adjacent",
        "multi-digit",
        "at-start",
        "at-end",
        "already-markdown",
        "letters",
        "empty",
        "brackets-and-carets",
        "plain",
    ],
)
def test_shaper_rewrites_markers_in_one_feed(text, expected):
    assert shape([text]) == expected


TEXT_WITH_MARKER = "A[^12^]B"


@pytest.mark.parametrize(
    "cut", range(len(TEXT_WITH_MARKER) + 1), ids=lambda c: f"cut-{c}"
)
def test_shaper_marker_split_in_two_at_every_point(cut):
    pieces = [TEXT_WITH_MARKER[:cut], TEXT_WITH_MARKER[cut:]]
    assert shape(pieces) == "A[^12]B"


def test_shaper_marker_fed_one_character_at_a_time():
    assert shape(list("x[^1^]y[^22^]z")) == "x[^1]y[^22]z"


@pytest.mark.parametrize(
    ("piece", "sent", "held"),
    [
        ("Hello [", "Hello ", "["),
        ("Hello [^", "Hello ", "[^"),
        ("Hello [^1", "Hello ", "[^1"),
        ("Hello [^12^", "Hello ", "[^12^"),
        ("Hello [^x", "Hello [^x", ""),
    ],
    ids=["bracket", "caret", "digit", "closing-caret", "not-a-marker"],
)
def test_shaper_holds_back_only_a_possible_marker_tail(piece, sent, held):
    shaper = AnswerShaper()

    assert shaper.feed(piece) == sent
    assert shaper.finish() == held


def test_shaper_unfinished_marker_released_when_next_piece_breaks_it():
    shaper = AnswerShaper()

    assert shaper.feed("a [^1") == "a "
    assert shaper.feed("x] b") == "[^1x] b"


ANSWER_ALPHABET = st.lists(
    st.sampled_from(["[^1^]", "[^23^]", "[", "^", "]", "1", "2", "a", " ", "\n", "é"]),
    max_size=30,
).map("".join)
CUTS = st.lists(st.integers(min_value=0, max_value=200), max_size=12)


@given(ANSWER_ALPHABET, CUTS)
def test_shaper_markers_independent_of_split(text, cuts):
    assert shape(split_at(text, cuts)) == shape([text]) == reference_markers(text)


# -- stop sequences ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "pieces", "expected", "stopped"),
    [
        (("END",), ["Hello END world"], "Hello ", True),
        (("END",), ["Hel", "lo E", "ND world"], "Hello ", True),
        (("END",), ["Hello E", "N", "D"], "Hello ", True),
        (("END",), ["END of it"], "", True),
        (("END",), ["no stop here"], "no stop here", False),
        (("END",), ["ends with EN"], "ends with EN", False),
        (("END",), ["E", "N"], "EN", False),
        (("\n\n", "Q:"), ["A: yes", "\n\nQ: more"], "A: yes", True),
        (("Q:", "\n\n"), ["A: yes Q: more\n\nlater"], "A: yes ", True),
        (("Q:", "\n\n"), ["A: yes\n\n", "Q: more"], "A: yes", True),
        (("END",), ["first END second END"], "first ", True),
        (("[^1]",), ["Cited [^1^] here"], "Cited ", True),
    ],
    ids=[
        "one-feed",
        "split-across-feeds",
        "split-char-by-char-at-end",
        "at-start",
        "absent",
        "partial-at-end-released-on-finish",
        "only-a-prefix",
        "several-earliest-wins",
        "several-order-irrelevant",
        "several-first-complete",
        "first-occurrence",
        "matches-rewritten-marker",
    ],
)
def test_shaper_stop_sequences(stop, pieces, expected, stopped):
    shaper = AnswerShaper(stop)
    out = "".join(shaper.feed(p) for p in pieces) + shaper.finish()

    assert (out, shaper.stopped) == (expected, stopped)


TEXT_WITH_STOP = "Answer.\nUser: next"


@pytest.mark.parametrize(
    "cut", range(len(TEXT_WITH_STOP) + 1), ids=lambda c: f"cut-{c}"
)
def test_shaper_stop_split_in_two_at_every_point(cut):
    assert (
        shape([TEXT_WITH_STOP[:cut], TEXT_WITH_STOP[cut:]], stop=("\nUser:",))
        == "Answer."
    )


def test_shaper_stopped_flag_flips_on_the_feed_that_completes_the_stop():
    shaper = AnswerShaper(("STOP",))

    assert (shaper.feed("go ST"), shaper.stopped) == ("go ", False)
    assert (shaper.feed("OP rest"), shaper.stopped) == ("", True)


def test_shaper_sends_nothing_after_a_stop():
    shaper = AnswerShaper(("STOP",))
    shaper.feed("go STOP")

    assert shaper.feed("more text [^1^]") == ""
    assert shaper.finish((Source("Title", "https://example.com"),)) == ""


def test_shaper_without_stops_never_stops():
    shaper = AnswerShaper()
    shaper.feed("STOP END \n\n")
    assert shaper.stopped is False


PLAIN = st.text(alphabet="abc \n", max_size=40)
STOP = st.text(alphabet="abc \n", min_size=1, max_size=4)


@given(PLAIN, STOP, CUTS)
def test_shaper_single_stop_output_is_text_before_first_occurrence(text, stop, cuts):
    out = shape(split_at(text, cuts), stop=(stop,))

    assert stop not in out
    assert out == text.split(stop, 1)[0]


@given(ANSWER_ALPHABET, st.sampled_from(["]", "^]", "[^1]", "a\n", "2 ", "é"]), CUTS)
def test_shaper_markers_and_stop_independent_of_split(text, stop, cuts):
    out = shape(split_at(text, cuts), stop=(stop,))

    assert out == shape([text], stop=(stop,))
    assert stop not in out


def test_shaper_overlapping_stops_independent_of_split():
    stops = ("Human:", "man")
    assert shape(["Hu", "man", ":"], stop=stops) == shape(["Human:"], stop=stops)


# -- footnotes ---------------------------------------------------------------------


def test_shaper_finish_appends_footnotes():
    sources = (
        Source(
            "Python (programming language)",
            "https://en.wikipedia.org/wiki/Python_(programming_language)",
        ),
        Source("Welcome to Python.org", "https://www.python.org/"),
    )
    assert shape(["Python is a language[^1^][^2^]."], sources=sources) == (
        "Python is a language[^1][^2]."
        "\n\n[^1]: [Python (programming language)](https://en.wikipedia.org/wiki/Python_(programming_language%29)"
        "\n[^2]: [Welcome to Python.org](https://www.python.org/)"
    )


@pytest.mark.parametrize(
    ("title", "rendered"),
    [
        ("[Beta] release", "\\[Beta\\] release"),
        ("a]b[c", "a\\]b\\[c"),
        ("back\\slash", "back\\\\slash"),
        ("plain", "plain"),
    ],
    ids=["brackets", "reversed-brackets", "backslash", "plain"],
)
def test_footnotes_escape_title(title, rendered):
    assert (
        footnotes([(1, Source(title, "https://example.com/a"))])
        == f"\n\n[^1]: [{rendered}](https://example.com/a)"
    )


def test_footnotes_empty_without_sources():
    assert footnotes([]) == ""


def test_shaper_finish_flushes_held_tail_before_footnotes():
    shaper = AnswerShaper()

    assert shaper.feed("see [^1^] and [^3") == "see [^1] and "
    assert (
        shaper.finish((Source("T", "https://t.example"),))
        == "[^3\n\n[^1]: [T](https://t.example)"
    )


def test_shaper_finish_cuts_footnotes_at_a_stop():
    assert (
        shape(["Answer"], stop=("\n\n",), sources=(Source("T", "https://t.example"),))
        == "Answer"
    )
