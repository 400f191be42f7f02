"""fold_messages: the last user message is the prompt, the rest Bing-markup context."""

from __future__ import annotations

import pytest

from bingo.prompt import Prompt, fold_messages
from bingo.wire import Message

BIG = 32_000


def user(text: str) -> Message:
    return Message("user", text)


def assistant(text: str) -> Message:
    return Message("assistant", text)


def test_fold_messages_single_user_message_has_empty_context():
    assert fold_messages((user("hi"),), BIG) == Prompt(text="hi", context="")


def test_fold_messages_exact_markup():
    messages = (
        Message("system", "Be brief."),
        user("Hi"),
        assistant("Hello! How can I help?"),
        user("What is 2+2?"),
    )

    assert fold_messages(messages, BIG) == Prompt(
        text="What is 2+2?",
        context=(
            "[system](#additional_instructions)\nBe brief.\n"
            "\n"
            "[user](#message)\nHi\n"
            "\n"
            "[assistant](#message)\nHello! How can I help?\n"
        ),
    )


def test_fold_messages_developer_role_is_system():
    messages = (Message("developer", "Answer in French."), user("Hi"))
    assert (
        fold_messages(messages, BIG).context
        == "[system](#additional_instructions)\nAnswer in French.\n"
    )


def test_fold_messages_system_messages_come_first_in_order():
    messages = (
        user("one"),
        Message("system", "First rule."),
        assistant("two"),
        Message("developer", "Second rule."),
        user("three"),
    )

    assert fold_messages(messages, BIG).context == (
        "[system](#additional_instructions)\nFirst rule.\n\n"
        "[system](#additional_instructions)\nSecond rule.\n\n"
        "[user](#message)\none\n\n"
        "[assistant](#message)\ntwo\n"
    )


def test_fold_messages_last_user_is_prompt_even_when_assistant_follows():
    messages = (
        user("first"),
        assistant("reply"),
        user("second"),
        assistant("Sure, here is"),
    )

    assert fold_messages(messages, BIG) == Prompt(
        text="second",
        context=(
            "[user](#message)\nfirst\n\n"
            "[assistant](#message)\nreply\n\n"
            "[assistant](#message)\nSure, here is\n"
        ),
    )


def test_fold_messages_block_content_is_stripped():
    messages = (user("  \n padded \n "), user("now"))
    assert fold_messages(messages, BIG).context == "[user](#message)\npadded\n"


def test_fold_messages_only_system_and_user():
    messages = (Message("system", "Be terse."), user("hi"))
    assert fold_messages(messages, BIG) == Prompt(
        "hi", "[system](#additional_instructions)\nBe terse.\n"
    )


# Earlier turns and a system block, with what each costs against the budget:
# its length plus the one newline that joins it to the next block.
U1 = "[user](#message)\none\n"  # 21 + 1 = 22
A1 = "[assistant](#message)\ntwo\n"  # 26 + 1 = 27
U2 = "[user](#message)\nthree\n"  # 23 + 1 = 24
A2 = "[assistant](#message)\nfour\n"  # 27 + 1 = 28
SYSTEM = "[system](#additional_instructions)\nBe brief.\n"  # 45 + 1 = 46
CONVERSATION = (
    user("one"),
    assistant("two"),
    user("three"),
    assistant("four"),
    user("five?"),
)


def test_fold_messages_block_costs_used_below():
    assert [len(b) + 1 for b in (U1, A1, U2, A2, SYSTEM)] == [22, 27, 24, 28, 46]


@pytest.mark.parametrize(
    ("budget", "kept"),
    [
        (BIG, [U1, A1, U2, A2]),
        (101, [U1, A1, U2, A2]),
        (100, [A1, U2, A2]),
        (52, [U2, A2]),
        (51, [A2]),
        (28, [A2]),
        (27, []),
        (0, []),
    ],
    ids=[
        "plenty",
        "exactly-all",
        "one-short-of-all",
        "exactly-two",
        "one-short-of-two",
        "exactly-one",
        "one-short-of-one",
        "zero",
    ],
)
def test_fold_messages_budget_keeps_newest_blocks(budget, kept):
    prompt = fold_messages(CONVERSATION, budget)

    assert prompt == Prompt("five?", "\n".join(kept))
    assert len(prompt.context) < max(budget, 1)


def test_fold_messages_budget_keeps_a_contiguous_newest_run():
    # The oldest turn would fit on its own, but it is older than one that does not.
    messages = (
        user("one"),
        assistant("x" * 500),
        user("three"),
        assistant("four"),
        user("five?"),
    )
    assert fold_messages(messages, 200).context == U2 + "\n" + A2


@pytest.mark.parametrize(
    ("budget", "context"),
    [
        (0, SYSTEM),
        (46, SYSTEM),
        (46 + 27, SYSTEM),
        (46 + 28, SYSTEM + "\n" + A2),
        (46 + 28 + 24, SYSTEM + "\n" + U2 + "\n" + A2),
    ],
    ids=[
        "no-budget",
        "system-only-fits",
        "one-short-of-system-plus-one",
        "system-plus-one",
        "system-plus-two",
    ],
)
def test_fold_messages_system_always_kept_and_counted_against_budget(budget, context):
    messages = (Message("system", "Be brief."), *CONVERSATION)
    assert fold_messages(messages, budget) == Prompt("five?", context)
