"""A worker killed with SIGKILL mid-stream loses nothing and applies nothing twice."""

import threading

import pytest
import torch

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.worker.state import UserState
from tests.support.kafka_io import TopicReader, latest_per_key, produce_events

pytestmark = pytest.mark.e2e

N_USERS = 40
EVENTS_PER_USER = 25


def workload(artifact) -> list[Event]:
    vocab = artifact.item_ids
    return [
        Event(f"u{u}-e{n}", f"u{u}", vocab[(11 * u + 5 * n * n) % len(vocab)], 1_700_000_000.0 + n)
        for n in range(EVENTS_PER_USER)
        for u in range(N_USERS)
    ]


def produce_in_chunks(bootstrap: str, topic: str, events: list[Event], chunk: int) -> None:
    for start in range(0, len(events), chunk):
        produce_events(bootstrap, topic, events[start : start + chunk])


def test_sigkill_mid_stream_gives_the_same_states_and_every_list(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    events = workload(artifact)
    first_half, second_half = events[: len(events) // 2], events[len(events) // 2 :]
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])

    worker = setup.worker().start()
    worker.wait_ready()
    producer = threading.Thread(
        target=produce_in_chunks, args=(kafka_bootstrap, setup.topics["click"], first_half, 20)
    )
    producer.start()
    lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(first_half) // 5, worker=worker)]
    worker.kill()
    producer.join()
    produce_events(kafka_bootstrap, setup.topics["click"], second_half)

    worker = setup.worker().start()
    try:
        worker.wait_ready()
        seen = {r.event_id for r in lists}
        assert len(seen) < len(events), "the crash came after the whole stream: nothing was tested"
        while not seen >= {e.event_id for e in events}:
            batch = [Recommendation.from_bytes(m.value) for m in recs.read(1, worker=worker)]
            lists += batch
            seen.update(r.event_id for r in batch)
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()

    # A list sent twice (once before the crash, once after) is the same list.
    first_copy: dict[str, Recommendation] = {}
    for rec in lists:
        original = first_copy.setdefault(rec.event_id, rec)
        assert (rec.items, rec.model_version, rec.source) == (
            original.items,
            original.model_version,
            original.source,
        )

    # Every user's state is, bit for bit, what a run without the crash computes: each event applied once.
    users = {f"u{u}" for u in range(N_USERS)}
    changelog = latest_per_key(kafka_bootstrap, setup.changelog_topic, {u.encode() for u in users})
    index = artifact.item_index
    for user in users:
        mine = [e for e in events if e.user_id == user]
        state = UserState.from_bytes(changelog[user.encode()])
        assert state.events_seen == EVENTS_PER_USER
        assert state.recent_items == [e.item_id for e in mine]
        items = torch.tensor([index[e.item_id] for e in mine])
        expected = artifact.model.encode(items, torch.zeros(len(mine), dtype=torch.long))
        assert torch.equal(torch.from_numpy(state.hidden), expected)  # bit for bit
