"""The read budget's rules, pure (bingo/read_budget.py): who is stalled, who pauses, who resumes."""
from __future__ import annotations

from bingo.prefetch import RequestScan
from bingo.read_budget import SMALL_REQUEST, ReadBudget, Reading, stalled


def reading(holding: int, last_read: float, *, paused: bool = False) -> Reading:
    scan = RequestScan(65536, 1 << 22)
    scan.buffer += b"x" * holding
    return Reading(conn=object(), scan=scan, deadline=100.0, last_read=last_read, paused=paused)


def test_stalled_are_large_unpaused_silent_ones_longest_silent_first():
    now = 50.0
    asking = reading(SMALL_REQUEST + 1, now - 5)
    old, older = reading(SMALL_REQUEST + 1, now - 1.0), reading(SMALL_REQUEST + 1, now - 3.0)
    others = [
        reading(SMALL_REQUEST, now - 9),  # small: always reads
        reading(SMALL_REQUEST + 1, now - 9, paused=True),  # its silence is the budget's doing
        reading(SMALL_REQUEST + 1, now - 0.9),  # still sending
    ]
    assert stalled([old, asking, *others, older], asking, now) == [older, old]


def test_a_closed_favoured_reader_hands_its_place_to_the_heir_not_the_longest_paused():
    budget: ReadBudget[str] = ReadBudget(limit=10 * SMALL_REQUEST)
    budget.held = 12 * SMALL_REQUEST
    assert budget.must_pause("stalled", 2 * SMALL_REQUEST) is False  # the first past the limit is favoured
    assert budget.must_pause("paused", 2 * SMALL_REQUEST) is True
    assert budget.release("stalled", SMALL_REQUEST, heir="honest") == []  # still over: nobody resumes
    assert budget.must_pause("honest", 3 * SMALL_REQUEST) is False  # the heir reads on
    assert budget.release("honest", 3 * SMALL_REQUEST) == ["paused"]  # back under the limit


def test_without_an_heir_the_longest_paused_takes_the_place():
    budget: ReadBudget[str] = ReadBudget(limit=10 * SMALL_REQUEST)
    budget.held = 12 * SMALL_REQUEST
    budget.must_pause("first", 2 * SMALL_REQUEST)
    assert [budget.must_pause(name, 2 * SMALL_REQUEST) for name in ("second", "third")] == [True, True]
    assert budget.release("first", SMALL_REQUEST) == ["second"]  # still over: one resumes, favoured
    assert budget.must_pause("fourth", 2 * SMALL_REQUEST) is True


def test_a_paused_heir_leaves_the_queue():
    budget: ReadBudget[str] = ReadBudget(limit=10 * SMALL_REQUEST)
    budget.held = 12 * SMALL_REQUEST
    budget.must_pause("stalled", 2 * SMALL_REQUEST)
    budget.must_pause("honest", 2 * SMALL_REQUEST)
    budget.release("stalled", SMALL_REQUEST, heir="honest")
    assert budget.release("other", 5 * SMALL_REQUEST) == []  # "honest" reads already: never resumed twice
