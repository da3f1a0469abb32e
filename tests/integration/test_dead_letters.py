"""Every class of bad input lands in the dead-letter topic with its reason; good events around it
are processed."""

import json

import pytest

from models.artifact import load_artifact
from schemas.dead_letters import DeadLetter
from schemas.events import Event
from schemas.recommendations import Recommendation
from tests.support.kafka_io import TopicReader, produce

pytestmark = pytest.mark.e2e


def test_bad_input_goes_to_dead_letters_and_good_input_still_flows(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    item = artifact.item_ids[0]
    good = {"event_id": "g", "user_id": "u", "item_id": item, "event_time": 1_700_000_000.0}
    bad = {
        "malformed_json": b"{not json",
        "missing_field": json.dumps({k: v for k, v in good.items() if k != "item_id"}).encode(),
        "wrong_type": json.dumps({**good, "event_time": "noon"}).encode(),
        "unknown_event_type": json.dumps({**good, "event_type": "like"}).encode(),
        "absurd_timestamp": json.dumps({**good, "event_time": 1_700_000_000_000}).encode(),
        "oversized": json.dumps({**good, "item_id": "x" * 10_000}).encode(),
    }
    click = setup.topics["click"]
    messages = []
    good_ids = []
    for n, raw in enumerate(bad.values()):
        event = Event(f"good-{n}", f"user-{n}", artifact.item_ids[n], 1_700_000_000.0 + n)
        good_ids.append(event.event_id)
        messages.append((click, event.user_id.encode(), event.to_bytes()))
        messages.append((click, f"user-{n}".encode(), raw))
    produce(kafka_bootstrap, messages)

    dead = TopicReader(kafka_bootstrap, setup.topics["dead_letters"])
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        letters = [DeadLetter.from_bytes(m.value) for m in dead.read(len(bad), worker=worker)]
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(good_ids), worker=worker)]
    finally:
        assert worker.stop() == 0, worker.log_tail()
        dead.close()
        recs.close()

    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == set(bad)
    for reason, raw in bad.items():
        letter = by_reason[reason]
        assert letter.original == raw
        assert letter.source.topic == click
        assert letter.detail
    assert sorted(r.event_id for r in lists) == sorted(good_ids)


def test_input_that_once_crashed_the_agent_is_dead_lettered_and_the_events_behind_it_flow(
    kafka_bootstrap, streamer_setup
):
    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    good = {"event_id": "g", "user_id": "u", "item_id": artifact.item_ids[0], "event_time": 1_700_000_000.0}
    hostile = {
        "deep nesting": b"[" * 2000 + b"]" * 2000,
        "null value": None,
        "lone surrogate": json.dumps({**good, "user_id": "\ud800"}).encode(),
        "huge integer": json.dumps(good).replace("1700000000.0", "9" * 400).encode(),
        "record near the broker's limit": b"x" * 900_000,
    }
    click = setup.topics["click"]
    messages = []
    for n, raw in enumerate(hostile.values()):
        messages.append((click, f"bad-{n}".encode(), raw))
    good_events = [Event(f"good-{n}", f"user-{n}", artifact.item_ids[n], 1_700_000_000.0) for n in range(5)]
    messages += [(click, e.user_id.encode(), e.to_bytes()) for e in good_events]
    produce(kafka_bootstrap, messages)

    dead = TopicReader(kafka_bootstrap, setup.topics["dead_letters"])
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        letters = [DeadLetter.from_bytes(m.value) for m in dead.read(len(hostile), worker=worker)]
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(good_events), worker=worker)]
        assert dead.read_quiet(2.0) == [] and recs.read_quiet(0.5) == []
    finally:
        assert worker.stop() == 0, worker.log_tail()
        dead.close()
        recs.close()
    assert "Crashed" not in worker.log_tail(200_000)
    kept = {None if raw is None else raw[: 256 << 10] for raw in hostile.values()}
    assert {letter.original for letter in letters} == kept  # the huge one as its first 256 KiB
    assert sorted(r.event_id for r in lists) == sorted(e.event_id for e in good_events)
