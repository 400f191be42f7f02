"""ChatHub framing: RS-terminated JSON records, reassembled however they arrive."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bingo.errors import UpstreamProtocolError
from bingo.upstream.chathub.signalr import (
    CLOSE,
    COMPLETION,
    HANDSHAKE,
    INVOCATION,
    PING,
    PING_TYPE,
    RS,
    STREAM_INVOCATION,
    STREAM_ITEM,
    RecordBuffer,
    encode_record,
)

UPDATE = {
    "type": 1,
    "target": "update",
    "arguments": [{"messages": [{"text": "Caf\u00e9 \u2615 \U0001f600 [^1^]"}]}],
}
FINAL = {"type": 2, "invocationId": "0", "item": {"result": {"value": "Success"}}}
END = {"type": 3, "invocationId": "0"}
MESSAGE = encode_record(UPDATE) + encode_record(FINAL) + encode_record(END)


def test_signalr_constants_match_the_protocol():
    assert RS == "\x1e"
    assert HANDSHAKE == '{"protocol":"json","version":1}\x1e'
    assert PING == '{"type":6}\x1e'
    assert (
        INVOCATION,
        STREAM_ITEM,
        COMPLETION,
        STREAM_INVOCATION,
        PING_TYPE,
        CLOSE,
    ) == (1, 2, 3, 4, 6, 7)


@pytest.mark.parametrize(
    ("record", "encoded"),
    [
        ({"type": 6}, '{"type":6}\x1e'),
        ({"protocol": "json", "version": 1}, '{"protocol":"json","version":1}\x1e'),
        ({"text": "caf\u00e9 \U0001f600"}, '{"text":"caf\u00e9 \U0001f600"}\x1e'),
        ({"text": "a\x1eb"}, '{"text":"a\\u001eb"}\x1e'),
        (
            {"arguments": [{"a": None, "b": True}]},
            '{"arguments":[{"a":null,"b":true}]}\x1e',
        ),
    ],
    ids=[
        "ping",
        "handshake",
        "unicode-kept-raw",
        "rs-inside-text-escaped",
        "nested-compact",
    ],
)
def test_encode_record(record, encoded):
    assert encode_record(record) == encoded


def test_encode_record_round_trips_through_buffer():
    assert RecordBuffer().feed(encode_record(UPDATE)) == [UPDATE]


def test_record_buffer_handshake_ack():
    assert RecordBuffer().feed("{}\x1e") == [{}]


def test_record_buffer_several_records_in_one_message():
    buffer = RecordBuffer()

    assert buffer.feed(MESSAGE) == [UPDATE, FINAL, END]
    assert buffer.pending is False


@pytest.mark.parametrize("cut", range(len(MESSAGE) + 1), ids=lambda c: f"cut-{c}")
def test_record_buffer_split_at_every_position(cut):
    buffer = RecordBuffer()
    records = buffer.feed(MESSAGE[:cut]) + buffer.feed(MESSAGE[cut:])

    assert records == [UPDATE, FINAL, END]
    assert buffer.pending is False


def test_record_buffer_one_character_at_a_time():
    buffer = RecordBuffer()
    records = [record for char in MESSAGE for record in buffer.feed(char)]
    assert records == [UPDATE, FINAL, END]


@given(st.lists(st.integers(min_value=0, max_value=len(MESSAGE)), max_size=10))
def test_record_buffer_any_split_yields_the_same_records(cuts):
    bounds = [0, *sorted(cuts), len(MESSAGE)]
    buffer = RecordBuffer()
    records = [r for a, b in pairwise(bounds) for r in buffer.feed(MESSAGE[a:b])]

    assert records == [UPDATE, FINAL, END]


def test_record_buffer_returns_record_only_when_its_rs_arrives():
    buffer = RecordBuffer()
    first, rest = '{"type":6}', '\x1e{"type":3}'

    assert (buffer.feed(first), buffer.pending) == ([], True)
    assert (buffer.feed(rest), buffer.pending) == ([{"type": 6}], True)
    assert (buffer.feed(RS), buffer.pending) == ([{"type": 3}], False)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", []),
        (RS, []),
        (RS * 3, []),
        ('{"type":6}' + RS * 2, [{"type": 6}]),
        (RS + '{"type":6}' + RS, [{"type": 6}]),
    ],
    ids=[
        "empty-message",
        "lone-rs",
        "only-rs",
        "double-rs-after-record",
        "rs-before-record",
    ],
)
def test_record_buffer_ignores_empty_pieces(message, expected):
    buffer = RecordBuffer()

    assert buffer.feed(message) == expected
    assert buffer.pending is False


def test_record_buffer_new_buffer_not_pending():
    assert RecordBuffer().pending is False


@pytest.mark.parametrize(
    "message",
    ["not json\x1e", '{"type":1\x1e', "{'type': 1}\x1e", '{"type":6}\x1e{oops}\x1e'],
    ids=["text", "truncated-object", "single-quotes", "good-then-bad"],
)
def test_record_buffer_non_json_record_raises_protocol_error(message):
    with pytest.raises(UpstreamProtocolError) as info:
        RecordBuffer().feed(message)
    assert (info.value.status, info.value.code) == (502, "bad_upstream_frame")


@pytest.mark.parametrize(
    "message",
    ["[1,2]\x1e", '"update"\x1e', "6\x1e", "null\x1e", "true\x1e"],
    ids=["array", "string", "number", "null", "bool"],
)
def test_record_buffer_non_object_record_raises_protocol_error(message):
    with pytest.raises(UpstreamProtocolError) as info:
        RecordBuffer().feed(message)
    assert info.value.code == "bad_upstream_frame"


def test_record_buffer_incomplete_garbage_not_decoded_until_rs():
    buffer = RecordBuffer()

    assert buffer.feed("not json yet") == []
    assert buffer.pending is True
    with pytest.raises(UpstreamProtocolError):
        buffer.feed(RS)
