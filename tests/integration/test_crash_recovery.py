"""A worker killed with SIGKILL mid-stream loses nothing and applies nothing twice."""

import threading

import pytest
import torch

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.state import UserState
from tests.support.kafka_io import TopicReader, latest_per_key, produce_events

pytestmark = pytest.mark.e2e

N_USERS = 20
EVENTS_PER_USER = 15


def workload(artifact) -> list[Event]:
    vocab = artifact.item_ids
    return [
        Event(f"u{u}-e{n}", f"u{u}", vocab[(11 * u + 5 * n * n) % len(vocab)], 1_700_000_000.0 + n)
        for n in range(EVENTS_PER_USER)
        for u in range(N_USERS)
    ]


def produce_in_chunks(bootstrap: str, topic: str, events: list[Event], chunks: int) -> None:
    size = -(-len(events) // chunks)
    for start in range(0, len(events), size):
        produce_events(bootstrap, topic, events[start : start + size])


def test_sigkill_mid_stream_gives_the_same_states_and_every_list(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    events = workload(artifact)
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])

    worker = setup.worker().start()
    producer = threading.Thread(
        target=produce_in_chunks, args=(kafka_bootstrap, setup.topics["click"], events, 30)
    )
    producer.start()
    first = recs.read(len(events) // 3, worker=worker)
    worker.kill()
    producer.join()

    worker = setup.worker().start()
    try:
        lists = [Recommendation.from_bytes(m.value) for m in first]
        seen = {r.event_id for r in lists}
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

    # Every user's state is what a run without the crash computes: each event applied exactly once.
    changelog = latest_per_key(
        kafka_bootstrap, setup.changelog_topic, {f"u{u}".encode() for u in range(N_USERS)}
    )
    index = artifact.item_index
    for u in range(N_USERS):
        mine = [e for e in events if e.user_id == f"u{u}"]
        state = UserState.from_bytes(changelog[f"u{u}".encode()])
        assert state.events_seen == EVENTS_PER_USER
        assert state.recent_items == [e.item_id for e in mine]
        expected = artifact.model.encode(
            torch.tensor([index[e.item_id] for e in mine]), torch.zeros(len(mine), dtype=torch.long)
        )
        assert torch.allclose(torch.from_numpy(state.hidden), expected, atol=1e-6, rtol=0)
