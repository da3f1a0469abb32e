"""msgspec's decoding errors become the reasons producers and dashboards count, with a detail naming
the field; hostile input of any kind ends as an InvalidMessage, never another exception."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.dead_letters import DeadLetter, DeadLetterReason
from schemas.errors import InvalidMessage
from schemas.events import Event, EventType
from schemas.model_updates import ModelAnnouncement
from schemas.reasons import DEFAULT_REASONS
from schemas.recommendations import Recommendation

NOW = 1_700_000_000.0
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_time": 1_600_000_000.5}
GOOD_BYTES = json.dumps(GOOD).encode()
LIST = {
    "user_id": "u1",
    "items": [{"item_id": "a", "score": 1.5}],
    "model_version": "v1",
    "event_id": "e1",
    "event_time": 1_600_000_000.0,
    "produced_at": NOW,
    "source": {"topic": "click", "partition": 0, "offset": 7},
}
ANNOUNCEMENT = {"version": "v1", "path": "v1", "checksum": "0" * 64, "created_at": NOW, "metrics": {}}


def event_with(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def replaced(old: bytes, new: bytes) -> bytes:
    assert old in GOOD_BYTES
    return GOOD_BYTES.replace(old, new)


def rejection(parse, raw: bytes) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        parse(raw)
    return caught.value


def parse_event(raw: bytes) -> Event:
    return Event.from_bytes(raw, "click", now=NOW)


# (raw event, reason, what the detail must say)
EVENT_REJECTIONS = [
    pytest.param(b"x" * 5000, "oversized", "5000 bytes", id="oversized"),
    pytest.param(b"{not json", "malformed_json", "malformed", id="not json"),
    pytest.param(b"", "malformed_json", "truncated", id="empty"),
    pytest.param(GOOD_BYTES[:-1], "malformed_json", "truncated", id="cut short"),
    pytest.param(GOOD_BYTES + b" {}", "malformed_json", "trailing", id="two documents"),
    pytest.param(b"\xff\xfe{}", "malformed_json", "byte 0", id="not utf-8"),
    pytest.param(b"[1, 2]", "malformed_json", "expected a JSON object, got `array`", id="an array"),
    pytest.param(b"null", "malformed_json", "expected a JSON object, got `null`", id="null message"),
    pytest.param(b"[" * 2000 + b"]" * 2000, "malformed_json", "JSON object", id="deep array"),
    pytest.param(
        GOOD_BYTES[:-1] + b', "x": ' + b"[" * 1500 + b"]" * 1500 + b"}",
        "malformed_json",
        "nested too deeply",
        id="deep unknown field",
    ),
    pytest.param(event_with(user_id=None), "missing_field", "'user_id' is required, got null", id="null id"),
    pytest.param(
        json.dumps({k: v for k, v in GOOD.items() if k != "item_id"}).encode(),
        "missing_field",
        "'item_id' is required",
        id="absent id",
    ),
    pytest.param(event_with(event_time=None), "missing_field", "'event_time'", id="null time"),
    pytest.param(
        event_with(item_id=17.5), "wrong_type", "'item_id': expected `int | str`, got `float`", id="float id"
    ),
    pytest.param(event_with(item_id=True), "wrong_type", "'item_id'", id="boolean id"),
    pytest.param(event_with(item_id={"id": 1}), "wrong_type", "'item_id'", id="object id"),
    pytest.param(event_with(item_id=-1), "wrong_type", "'item_id': expected `int` >= 0", id="negative id"),
    pytest.param(event_with(item_id=2**64), "wrong_type", "'item_id'", id="id beyond int64"),
    pytest.param(
        event_with(user_id=""), "wrong_type", "'user_id': expected `str` of length >= 1", id="empty id"
    ),
    pytest.param(event_with(user_id="x" * 300), "wrong_type", "'user_id'", id="long id"),
    pytest.param(event_with(session_id=""), "wrong_type", "'session_id'", id="empty session"),
    pytest.param(event_with(event_time="noon"), "wrong_type", "'event_time'", id="time as text"),
    pytest.param(event_with(event_time=True), "wrong_type", "'event_time'", id="time as boolean"),
    pytest.param(replaced(b"1600000000.5", b"1e400"), "wrong_type", "'event_time'", id="time beyond float"),
    pytest.param(replaced(b"1600000000.5", b"9" * 4000), "wrong_type", "'event_time'", id="4000-digit time"),
    pytest.param(replaced(b"1600000000.5", b"NaN"), "wrong_type", "NaN or Infinity", id="NaN"),
    pytest.param(replaced(b"1600000000.5", b"Infinity"), "wrong_type", "NaN or Infinity", id="Infinity"),
    pytest.param(replaced(b"1600000000.5", b"-Infinity"), "wrong_type", "NaN or Infinity", id="-Infinity"),
    pytest.param(replaced(b'"u1"', b'"\\ud800"'), "wrong_type", "lone surrogate", id="lone high surrogate"),
    pytest.param(replaced(b'"u1"', b'"\\ud800x"'), "wrong_type", "lone surrogate", id="high surrogate, text"),
    pytest.param(replaced(b'"u1"', b'"a\\udfffb"'), "wrong_type", "lone surrogate", id="lone low surrogate"),
    pytest.param(event_with(event_type="like"), "unknown_event_type", "'like'", id="unknown type"),
    pytest.param(event_with(event_type=1), "unknown_event_type", "'event_type'", id="type as number"),
    pytest.param(
        event_with(event_type="buy"), "unknown_event_type", "click topic", id="type of another topic"
    ),
    pytest.param(event_with(event_time=0), "absurd_timestamp", "'event_time'", id="time zero"),
    pytest.param(event_with(event_time=NOW * 1000), "absurd_timestamp", "after now", id="milliseconds"),
]


@pytest.mark.parametrize(("raw", "reason", "detail"), EVENT_REJECTIONS)
def test_each_kind_of_bad_event_gets_its_reason_and_a_detail_naming_the_problem(raw, reason, detail):
    refused = rejection(parse_event, raw)
    assert (refused.reason, detail in refused.detail) == (reason, True), refused.detail


def test_every_reason_an_event_can_get_is_a_dead_letter_reason():
    reasons = {param.values[1] for param in EVENT_REJECTIONS}
    assert reasons <= set(DeadLetterReason.__args__)
    assert set(DEFAULT_REASONS.values()) <= reasons


def test_an_integer_id_is_the_same_id_as_its_decimal_string():
    as_numbers = parse_event(event_with(user_id=42, item_id=214536502, event_id=7, session_id=3))
    as_strings = parse_event(event_with(user_id="42", item_id="214536502", event_id="7", session_id="3"))
    assert as_numbers == as_strings
    assert as_numbers.item_id == "214536502" and isinstance(as_numbers.item_id, str)


def test_the_largest_integer_id_is_accepted_as_its_decimal_string():
    assert parse_event(event_with(item_id=2**63 - 1)).item_id == str(2**63 - 1)


def test_an_event_with_null_optional_fields_takes_the_topics_defaults():
    event = Event.from_bytes(event_with(session_id=None, event_type=None), "buy", now=NOW)
    assert (event.session_id, event.event_type) == (None, EventType.BUY)


def test_a_repeated_key_counts_with_its_last_value():
    raw = GOOD_BYTES.replace(b'{"event_id": "e1"', b'{"event_id": "first", "event_id": "e1"')
    assert parse_event(raw).event_id == "e1"
    assert rejection(parse_event, raw.replace(b'"e1"', b"null")).reason == "missing_field"


def test_unknown_fields_are_ignored():
    assert parse_event(event_with(extra={"nested": [1, 2]}, price=3.5)) == parse_event(GOOD_BYTES)


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (dict(LIST, items=[{"item_id": "a", "score": None}]), "missing_field", "'items[0].score'"),
        (dict(LIST, items=[{"item_id": "a", "score": "high"}]), "wrong_type", "'items[0].score'"),
        (dict(LIST, items={"a": 1}), "wrong_type", "'items'"),
        (dict(LIST, source={"topic": "click", "offset": 1}), "missing_field", "'source.partition'"),
        (
            dict(LIST, source={"topic": "click", "partition": -1, "offset": 1}),
            "wrong_type",
            "'source.partition'",
        ),
    ],
)
def test_a_bad_recommendation_gets_the_reason_of_its_field(raw, reason, detail):
    refused = rejection(Recommendation.from_bytes, json.dumps(raw).encode())
    assert refused.reason == reason and detail in refused.detail


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        ({"version": "v"}, "missing_field", "'path'"),
        (dict(ANNOUNCEMENT, checksum="abc"), "wrong_type", "'checksum'"),
        (dict(ANNOUNCEMENT, metrics={"recall@20": "good"}), "wrong_type", "'metrics"),
        (dict(ANNOUNCEMENT, metrics=[0.5]), "wrong_type", "'metrics'"),
    ],
)
def test_a_bad_announcement_gets_the_reason_of_its_field(raw, reason, detail):
    refused = rejection(ModelAnnouncement.from_bytes, json.dumps(raw).encode())
    assert refused.reason == reason and detail in refused.detail


def test_announcement_metrics_given_as_integers_are_read_as_floats():
    announcement = ModelAnnouncement.from_bytes(json.dumps(dict(ANNOUNCEMENT, metrics={"n": 3})).encode())
    assert announcement.metrics == {"n": 3.0} and isinstance(announcement.metrics["n"], float)


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"reason": "bored"}, "wrong_type", "'reason'"),
        ({"original_b64": "***"}, "wrong_type", "'original_b64'"),
        ({"original_b64": None}, "missing_field", "'original_b64'"),
        ({"received_at": None}, "missing_field", "'received_at'"),
    ],
)
def test_a_bad_dead_letter_gets_the_reason_of_its_field(changes, reason, detail):
    letter = {
        "reason": "wrong_type",
        "detail": "d",
        "source": LIST["source"],
        "original_b64": "",
        "received_at": 1.0,
    }
    refused = rejection(DeadLetter.from_bytes, json.dumps({**letter, **changes}).encode())
    assert refused.reason == reason and detail in refused.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
documents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value, allow_nan=True).encode()),
    st.fixed_dictionaries({}, optional=dict.fromkeys(LIST, json_values)).map(
        lambda d: json.dumps(d).encode()
    ),
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_bytes_decode_to_a_message_or_raise_invalid_message(raw):
    for parse in (
        parse_event,
        Recommendation.from_bytes,
        DeadLetter.from_bytes,
        ModelAnnouncement.from_bytes,
    ):
        try:
            parse(raw)
        except InvalidMessage as refused:
            assert refused.reason in DeadLetterReason.__args__ and refused.detail
