"""Property-based fuzzing of the input path: arbitrary bytes, arbitrary JSON, hostile strings and
arbitrary keys on either input topic. Whatever arrives, routing and applying never raise, and every
record ends as exactly one list or one dead letter, and every dead letter fits in a Kafka message."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.dead_letters import DeadLetter
from schemas.recommendations import Recommendation
from streamer.worker.engine import Recommender
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.sequencing import route, unframe
from tests.support.artifacts import make_artifact

KINDS = {"click": "click", "buy": "buy"}
PARTITIONS = 3
NOW = 1_700_000_000.0
ARTIFACT = make_artifact()
MAX_MESSAGE_BYTES = 1 << 20

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\ud800", "a\udfffb", "\x00", "ü-😀", "x" * 300, " ", "null"]),
    st.sampled_from(ARTIFACT.item_ids),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(hostile_text, json_values),
        "user_id": st.one_of(st.sampled_from(["alice", "bob", "carol"]), hostile_text, json_values),
        "item_id": st.one_of(st.sampled_from(ARTIFACT.item_ids), hostile_text, json_values),
        "event_time": st.one_of(
            st.floats(1_500_000_000, 1_700_000_000),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(10**400), max_value=10**400),
            json_values,
        ),
        "session_id": st.one_of(hostile_text, json_values),
        "event_type": st.one_of(st.sampled_from(["click", "buy", "cart", "like"]), json_values),
    },
)


def to_json_bytes(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode(errors="surrogatepass")


values = st.one_of(
    st.none(),
    st.binary(max_size=300),
    json_values.map(to_json_bytes),
    event_like.map(to_json_bytes),
    event_like.map(lambda obj: json.dumps(obj).encode()),  # surrogates as \u escapes
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
records = st.lists(
    st.tuples(st.sampled_from(["click", "buy"]), st.one_of(st.none(), st.binary(max_size=40)), values),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_every_record_ends_as_exactly_one_list_or_one_dead_letter(raw_records):
    inputs = [
        (InputRecord(topic, offset % PARTITIONS, offset, key, value), None)
        for offset, (topic, key, value) in enumerate(raw_records)
    ]
    routed = route(inputs, KINDS, PARTITIONS, NOW, 3600.0)
    assert len(routed.forwards) + len(routed.dead_letters) == len(inputs)

    parsed, dead_letters = [], list(routed.dead_letters)
    for offset, (partition, key, value, _) in enumerate(routed.forwards):
        outcome = unframe(InputRecord("sequenced", partition, offset, key, value), PARTITIONS, KINDS, NOW)
        (parsed if isinstance(outcome, ParsedEvent) else dead_letters).append(outcome)
    assert all(isinstance(outcome, ParsedEvent) for outcome in parsed)

    result = Recommender(ARTIFACT, ServingPolicy(top_k=5)).apply(parsed, {})
    dead_letters += result.dead_letters
    assert result.duplicates == 0
    assert len(result.lists) + len(dead_letters) == len(inputs)

    listed = [Recommendation.from_bytes(value) for _, value in result.lists]
    ends = sorted([r.source.offset for r in listed] + [d.source.offset for d in dead_letters])
    assert ends == list(range(len(inputs)))  # each input record: one list or one dead letter
    for letter in dead_letters:
        assert isinstance(letter, DeadLetter)
        assert len(letter.to_bytes()) + len(letter.kafka_key or b"") < MAX_MESSAGE_BYTES
    for user, value in result.lists:
        user.encode()  # a user id that could not be encoded would fail the state write
        listed = json.loads(value)
        assert len(listed["items"]) == 5 if listed["basis"] == "model" else len(listed["items"]) <= 5
