"""Input that once crashed the agent: every record ends as an event or a dead letter that Kafka accepts."""

import base64
import hashlib
import json

import jsonschema
import pytest

from schemas.dead_letters import MAX_ORIGINAL_BYTES, MAX_ORIGINAL_KEY_BYTES, DeadLetter
from schemas.json_schemas import load_schema
from schemas.recommendations import SourcePosition
from streamer.worker.records import InputRecord, ParsedEvent, parse_record

NOW = 1_700_000_000.0
GOOD = b'{"event_id":"e","user_id":"u","item_id":"i","event_time":1600000000}'


def parsed(value: bytes | None, key: bytes | None = b"u"):
    return parse_record(InputRecord("click", 0, 7, key, value), "click", NOW, 3600.0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 2000 + b"]" * 2000, "malformed_json"),  # deeper than Python's recursion limit
        (b'{"a":' + b"[" * 1900 + b"]" * 1900 + b"}", "malformed_json"),
        (None, "malformed_json"),  # a null value (tombstone)
        (GOOD.replace(b'"u"', b'"\\ud800"'), "wrong_type"),  # a lone surrogate cannot be encoded
        (GOOD.replace(b'"i"', b'"a\\udfffb"'), "wrong_type"),
        (GOOD.replace(b"1600000000", b"9" * 400), "wrong_type"),  # beyond float's range
        (GOOD.replace(b"1600000000", b"9" * 4000), "wrong_type"),  # its repr would raise
        (b"\xff\xfe{}", "malformed_json"),
    ],
)
def test_hostile_input_becomes_a_dead_letter_with_a_reason(value, reason):
    outcome = parsed(value)
    assert isinstance(outcome, DeadLetter) and outcome.reason == reason
    letter = json.loads(outcome.to_bytes())
    jsonschema.validate(letter, load_schema("dead-letter"))
    assert letter.get("original_null", False) is (value is None)


def test_a_valid_event_with_unicode_ids_is_accepted():
    outcome = parsed(GOOD.replace(b'"u"', '"ü-😀"'.encode()))
    assert isinstance(outcome, ParsedEvent) and outcome.event.user_id == "ü-😀"


def test_a_dead_letter_of_a_huge_record_keeps_a_prefix_its_size_and_hash():
    original, key = b"x" * (3 * MAX_ORIGINAL_BYTES), b"k" * (2 * MAX_ORIGINAL_KEY_BYTES)
    letter = DeadLetter("oversized", "big", SourcePosition("click", 0, 1), original, key, NOW)
    raw = letter.to_bytes()
    assert len(raw) < 512 << 10
    obj = json.loads(raw)
    jsonschema.validate(obj, load_schema("dead-letter"))
    assert base64.b64decode(obj["original_b64"]) == original[:MAX_ORIGINAL_BYTES]
    assert (obj["original_truncated"], obj["original_size"]) == (True, len(original))
    assert obj["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert obj["original_key_size"] == len(key) and len(letter.kafka_key) == MAX_ORIGINAL_KEY_BYTES


def test_a_dead_letter_with_a_surrogate_in_its_detail_still_encodes():
    letter = DeadLetter("wrong_type", "bad \ud800 id", SourcePosition("click", 0, 1), b"", None, NOW)
    assert json.loads(letter.to_bytes())["detail"] == "bad ? id"
