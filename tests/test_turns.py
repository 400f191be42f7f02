"""What every upstream turn must do, whichever client serves it (through the seam)."""
from __future__ import annotations

import pytest

from bingo import errors
from bingo.sandbox import answer_for, copilot_answer_for
from bingo.upstream import open_turn
from bingo.upstream.events import Delta, Finish
from tests.conftest import with_settings
from tests.helpers import BOTH_UPSTREAMS, deltas, read_turn, turn_request

def upstream_text(model, prompt):
    """The answer text as the upstream streams it: Copilot's has no [^1^] marker."""
    return copilot_answer_for(prompt).text if model.startswith("copilot") else answer_for(prompt)


def open_(settings, model, text):
    return open_turn(settings, turn_request(model, text))


@BOTH_UPSTREAMS
def test_turn_ends_with_one_finish_after_the_exact_answer(settings, sandbox, model):
    events = read_turn(open_(settings, model, "both ways"))
    assert deltas(events) == upstream_text(model, "both ways")
    assert [type(e) for e in events].count(Finish) == 1 and isinstance(events[-1], Finish)
    assert sandbox.wait_idle(2.0)


@BOTH_UPSTREAMS
def test_total_timeout_ends_a_long_answer(settings, sandbox, model):
    slow = with_settings(settings, total_timeout=1.0, idle_timeout=5.0)
    with pytest.raises(errors.UpstreamTimeout, match="BINGO_TOTAL_TIMEOUT"):
        read_turn(open_(slow, model, "long [sandbox:updates=40] [sandbox:delay=0.1]"))
    assert sandbox.wait_idle(2.0)


@BOTH_UPSTREAMS
def test_idle_timeout_ends_a_silent_turn(settings, sandbox, model):
    quiet = with_settings(settings, idle_timeout=0.5)
    with pytest.raises(errors.UpstreamTimeout, match="BINGO_IDLE_TIMEOUT"):
        read_turn(open_(quiet, model, "[sandbox:silent=after-text]"))
    assert sandbox.wait_idle(2.0)


@BOTH_UPSTREAMS
def test_caller_stopping_early_closes_the_socket(settings, sandbox, model):
    turn = open_(settings, model, "stop early [sandbox:delay=0.05]")
    next(e for e in turn.events() if isinstance(e, Delta))
    before = sandbox.stats()["closed_by_client"]
    turn.close()
    assert sandbox.wait_idle(1.0)
    assert sandbox.stats()["closed_by_client"] == before + 1


@BOTH_UPSTREAMS
def test_keepalive_ticks_while_the_upstream_is_slow(settings, sandbox, model):
    ticking = with_settings(settings, keepalive_seconds=0.2, idle_timeout=5.0)
    events = read_turn(open_(ticking, model, "slow [sandbox:slow-first=1]"), tick=0.2)
    assert events.count(None) >= 2
    assert deltas(events) == upstream_text(model, "slow [sandbox:slow-first=1]")
