"""Routing input records to one ordered log per user, whatever partitioner the producer used."""

import pytest
from aiokafka.partitioner import murmur2

from schemas.dead_letters import DeadLetter
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.sequencing import decode_frame, encode_frame, route, unframe, user_partition

KINDS = {"click": "click", "buy": "buy"}
NOW = 1_700_000_000.0


def event(user: str, n: int = 0) -> bytes:
    return f'{{"event_id":"e{n}","user_id":"{user}","item_id":"i","event_time":1600000000}}'.encode()


@pytest.mark.parametrize("key", [b"user-1", None, b"", b"k" * 5000])
def test_a_frame_carries_the_origin_record(key):
    record = InputRecord("click", 7, 123456789012, key, event("u"))
    back = decode_frame(encode_frame(record))
    assert (back.topic, back.partition, back.offset, back.value) == ("click", 7, 123456789012, event("u"))
    assert back.key == (key if key is None or len(key) <= 1024 else None)


def test_the_user_partition_is_kafkas_default_for_the_user_id_as_key():
    assert user_partition("u-42", 12) == (murmur2(b"u-42") & 0x7FFFFFFF) % 12


def test_records_from_any_partition_and_without_keys_go_to_their_users_partition():
    records = [
        (InputRecord("click", 3, 10, None, event("alice")), None),
        (InputRecord("buy", 0, 11, b"whatever", event("alice", 1)), 1_000),
        (InputRecord("click", 1, 12, b"bob", b"not json"), None),
    ]
    routed = route(records, KINDS, 4, NOW, 3600.0)
    assert [(p, k) for p, k, _, _ in routed.forwards] == [(user_partition("alice", 4), b"alice")] * 2
    assert [f[3] for f in routed.forwards] == [None, 1_000]
    assert [letter.reason for letter in routed.dead_letters] == ["malformed_json"]
    partition, _, value, _ = routed.forwards[1]
    outcome = unframe(InputRecord("streamrec-sequenced", partition, 0, b"alice", value), 4, KINDS, NOW)
    assert isinstance(outcome, ParsedEvent)
    assert (outcome.record.topic, outcome.record.partition, outcome.record.offset) == ("buy", 0, 11)


def test_a_sequenced_record_no_router_wrote_is_dead_lettered_not_applied():
    good = encode_frame(InputRecord("click", 0, 1, None, event("alice")))
    wrong_partition = (user_partition("alice", 4) + 1) % 4
    cases = [
        InputRecord("seq", 0, 5, None, b"garbage"),
        InputRecord("seq", 0, 5, None, None),
        InputRecord("seq", 0, 5, None, good[:10]),
        InputRecord("seq", wrong_partition, 5, None, good),
        InputRecord("seq", 0, 5, None, encode_frame(InputRecord("elsewhere", 0, 1, None, event("x")))),
    ]
    for record in cases:
        assert isinstance(unframe(record, 4, KINDS, NOW), DeadLetter)
