"""Producers place records as they like (murmur2, librdkafka's CRC32, null keys, another topic's
partition count): every event is applied once, in one order per user, and gets its list."""

import random
import zlib

import pytest
import torch

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.worker.sequencing import decode_frame
from streamer.worker.state import UserState
from tests.integration.conftest import PARTITIONS
from tests.support.kafka_io import TopicReader, latest_per_key

pytestmark = pytest.mark.e2e

N_USERS = 12
EVENTS_PER_USER = 12


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default for keyed records (kcat, confluent-kafka, Go, .NET, Node clients)."""
    return zlib.crc32(key) % partitions


def test_events_of_one_user_on_several_partitions_are_each_applied_once_in_one_order(
    kafka_bootstrap, streamer_setup
):
    from kafka import KafkaProducer

    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    vocab = artifact.item_ids
    rng = random.Random(7)
    events = [
        Event(f"u{u}-e{n}", f"u{u}", vocab[(7 * u + 3 * n) % len(vocab)], 1_700_000_000.0 + n)
        for n in range(EVENTS_PER_USER)
        for u in range(N_USERS)
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
    placements = {"murmur2": 0, "crc32": 0, "null key": 0}
    try:
        for event in events:
            key = event.user_id.encode()
            how = rng.choice(list(placements))
            placements[how] += 1
            if how == "murmur2":
                producer.send(setup.topics["click"], key=key, value=event.to_bytes())
            elif how == "crc32":
                partition = crc32_partition(key, PARTITIONS)
                producer.send(setup.topics["click"], key=key, value=event.to_bytes(), partition=partition)
            else:
                partition = rng.randrange(PARTITIONS)
                producer.send(setup.topics["click"], key=None, value=event.to_bytes(), partition=partition)
        producer.flush()
    finally:
        producer.close()

    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=worker)]
        assert recs.read_quiet(2.0) == []
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()
    assert sorted(r.event_id for r in lists) == sorted(e.event_id for e in events)

    # Each state is the model run over that user's events in the order of the sequencing topic.
    sequenced = TopicReader(kafka_bootstrap, f"{setup.app_id}-sequenced").read(len(events))
    by_id = {e.event_id: e for e in events}
    order: dict[str, list[Event]] = {}
    for message in sequenced:
        event = by_id[Event.from_stored(decode_frame(message.value).value).event_id]
        order.setdefault(event.user_id, []).append(event)
    users = {e.user_id for e in events}
    changelog = latest_per_key(kafka_bootstrap, setup.changelog_topic, {u.encode() for u in users})
    for user in users:
        state = UserState.from_bytes(changelog[user.encode()])
        mine = order[user]
        assert state.events_seen == EVENTS_PER_USER and state.recent_items == [e.item_id for e in mine]
        items = torch.tensor([artifact.item_index[e.item_id] for e in mine])
        expected = artifact.model.encode(items, torch.zeros(len(mine), dtype=torch.long))
        assert torch.equal(torch.from_numpy(state.hidden), expected)  # bit for bit
    assert min(placements.values()) > 0
