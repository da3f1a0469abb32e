import json

import jsonschema
import pytest

from schemas.dead_letters import DeadLetter
from schemas.errors import InvalidMessage
from schemas.events import Event, EventType
from schemas.json_schemas import load_schema
from schemas.recommendations import RankedItem, Recommendation, SourcePosition

NOW = 1_700_000_000.0
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_time": 1_600_000_000.5}

# (raw bytes, topic kind, expected reason)
BAD_EVENTS = [
    (b"not json", "click", "malformed_json"),
    (b"[1, 2]", "click", "malformed_json"),
    (b"\xff\xfe", "click", "malformed_json"),
    (json.dumps({**GOOD, "event_id": None}).encode(), "click", "missing_field"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}).encode(), "click", "missing_field"),
    (json.dumps({**GOOD, "item_id": 17.5}).encode(), "click", "wrong_type"),  # integer ids are accepted
    (json.dumps({**GOOD, "user_id": ""}).encode(), "click", "wrong_type"),
    (json.dumps({**GOOD, "event_time": "yesterday"}).encode(), "click", "wrong_type"),
    (json.dumps({**GOOD, "event_time": True}).encode(), "click", "wrong_type"),
    (json.dumps({**GOOD, "event_type": "like"}).encode(), "click", "unknown_event_type"),
    (json.dumps({**GOOD, "event_type": "buy"}).encode(), "click", "unknown_event_type"),
    (json.dumps({**GOOD, "event_type": "click"}).encode(), "buy", "unknown_event_type"),
    (json.dumps({**GOOD, "event_time": 1_600_000_000_000}).encode(), "click", "absurd_timestamp"),
    (json.dumps({**GOOD, "event_time": 0}).encode(), "click", "absurd_timestamp"),
    (json.dumps({**GOOD, "item_id": "x" * 5000}).encode(), "click", "oversized"),
]


def test_event_round_trips_through_bytes():
    event = Event("e1", "u1", "i1", 1_600_000_000.25, EventType.CART, session_id="s1")
    assert Event.from_bytes(event.to_bytes(), "click", now=NOW) == event


def test_topic_decides_the_event_type_when_the_message_omits_it():
    raw = json.dumps(GOOD).encode()
    assert Event.from_bytes(raw, "click", now=NOW).event_type is EventType.CLICK
    assert Event.from_bytes(raw, "buy", now=NOW).event_type is EventType.BUY


@pytest.mark.parametrize(("raw", "kind", "reason"), BAD_EVENTS)
def test_bad_events_are_rejected_with_a_reason(raw, kind, reason):
    with pytest.raises(InvalidMessage) as caught:
        Event.from_bytes(raw, kind, now=NOW)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_the_json_schema_accepts_what_the_parser_accepts():
    validator = jsonschema.Draft202012Validator(load_schema("event"))
    for obj in [GOOD, {**GOOD, "session_id": "s", "event_type": "cart"}, {**GOOD, "session_id": None}]:
        validator.validate(obj)
        Event.from_bytes(json.dumps(obj).encode(), "click", now=NOW)


# The schema cannot express the upper time bound (it depends on the reader's clock) nor the topic.
SCHEMA_CHECKABLE = [
    raw
    for raw, _, reason in BAD_EVENTS
    if reason in {"missing_field", "wrong_type", "absurd_timestamp"}
    and json.loads(raw)["event_time"] != 1.6e12
]


@pytest.mark.parametrize("raw", SCHEMA_CHECKABLE)
def test_the_json_schema_rejects_what_the_parser_rejects(raw):
    obj = json.loads(raw)
    assert not jsonschema.Draft202012Validator(load_schema("event")).is_valid(obj)


def test_recommendation_round_trips_and_matches_its_schema():
    rec = Recommendation(
        user_id="u1",
        items=(RankedItem("a", 2.5), RankedItem("b", 1.25)),
        model_version="v1",
        event_id="e1",
        event_time=1_600_000_000.0,
        produced_at=NOW,
        source=SourcePosition("click", 3, 42),
    )
    raw = rec.to_bytes()
    assert Recommendation.from_bytes(raw) == rec
    jsonschema.validate(json.loads(raw), load_schema("recommendation"))


def test_dead_letter_keeps_the_original_bytes_and_matches_its_schema():
    letter = DeadLetter("malformed_json", "bad", SourcePosition("click", 0, 7), b"\x00\xffraw", b"u1", NOW)
    raw = letter.to_bytes()
    assert DeadLetter.from_bytes(raw) == letter
    jsonschema.validate(json.loads(raw), load_schema("dead-letter"))
