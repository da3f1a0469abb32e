"""A whole micro-batch without a broker: sequenced records in, lists, dead letters and states out,
through the in-memory state store and an outbox that records what it was given."""

import asyncio
import json

import pytest
import torch

from models.scoring import exact_top_k
from schemas.dead_letters import DeadLetter
from schemas.recommendations import Recommendation
from streamer.common.settings import Settings
from streamer.worker.batches import BatchProcessor, OvertakenByRebalance
from streamer.worker.engine import Recommender
from streamer.worker.model_feed import ModelHolder
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord
from streamer.worker.sequencing import encode_frame, user_partition
from streamer.worker.state import UserState
from streamer.worker.store.memory import MemoryStateStore
from tests.support.artifacts import make_artifact

SETTINGS = Settings.from_env({"STREAMREC_TOPIC_PARTITIONS": "3"})
PARTITIONS = SETTINGS.topics.partitions


class RecordingOutbox:
    def __init__(self, fail: bool = False) -> None:
        self.lists: list[tuple[str, bytes]] = []
        self.dead_letters: list[DeadLetter] = []
        self.fail = fail

    async def publish(self, lists: list[tuple[str, bytes]], dead_letters: list[DeadLetter]) -> None:
        if self.fail:
            raise RuntimeError("the broker refused the batch")
        self.lists += lists
        self.dead_letters += dead_letters


class Sequenced:
    """Input records framed as the router forwards them, each on its user's partition."""

    def __init__(self) -> None:
        self.offset = 0

    def event(self, user: str, item: int, event_id: str | None = None) -> InputRecord:
        self.offset += 1
        value = json.dumps(
            {
                "event_id": event_id or f"e{self.offset}",
                "user_id": user,
                "item_id": f"item-{item}",
                "event_time": 1_700_000_000 + self.offset,
            }
        ).encode()
        origin = InputRecord(SETTINGS.topics.click, 0, self.offset, user.encode(), value)
        return InputRecord(
            SETTINGS.sequenced_topic,
            user_partition(user, PARTITIONS),
            self.offset,
            None,
            encode_frame(origin),
        )


def processor(outbox: RecordingOutbox, store: MemoryStateStore | None = None) -> BatchProcessor:
    holder = ModelHolder(ServingPolicy(top_k=5))
    holder.stage(Recommender(make_artifact(), holder.policy), "memory")
    return BatchProcessor(SETTINGS, store or MemoryStateStore(), holder, outbox)


def test_a_micro_batch_publishes_one_list_per_event_and_dead_letters_then_stores_the_states():
    outbox, store, seq = RecordingOutbox(), MemoryStateStore(), Sequenced()
    records = [seq.event("alice", 3), seq.event("bob", 7), seq.event("alice", 9)]
    unknown_item = seq.event("carol", 10_000)
    not_a_frame = InputRecord(SETTINGS.sequenced_topic, 0, 99, None, b"{}")
    result = asyncio.run(processor(outbox, store).process([*records, unknown_item, not_a_frame]))

    lists = [Recommendation.from_bytes(value) for _, value in outbox.lists]
    lists.sort(key=lambda r: r.event_id)
    assert [(r.user_id, r.event_id) for r in lists] == [
        ("alice", "e1"),
        ("bob", "e2"),
        ("alice", "e3"),
        ("carol", "e4"),
    ]
    assert all(len(r.items) == 5 and r.model_version == "v1" for r in lists[:3])
    assert lists[3].basis == "popularity" and result.unknown_items == 1  # an item the model does not know
    assert [letter.reason for letter in outbox.dead_letters] == ["malformed_json"]
    assert result.lists == outbox.lists

    alice = store.read({"alice": user_partition("alice", PARTITIONS)})["alice"]
    artifact = make_artifact()
    expected = artifact.model.encode(torch.tensor([3, 9]), torch.tensor([0, 0]))
    assert torch.equal(torch.from_numpy(alice.hidden), expected)
    assert alice.recent_items == ["item-3", "item-9"]
    _, top = exact_top_k(artifact.model, expected.unsqueeze(0), 5)
    assert [i.item_id for i in lists[2].items] == [artifact.item_ids[i] for i in top[0].tolist()]
    carol = store.read({"carol": user_partition("carol", PARTITIONS)})["carol"]
    assert carol.recent_items == ["item-10000"] and not carol.hidden.any()  # kept for the next model


def test_the_same_batch_again_is_skipped_and_lists_nothing_new():
    outbox, store, seq = RecordingOutbox(), MemoryStateStore(), Sequenced()
    records = [seq.event("alice", 3), seq.event("alice", 4)]
    batches = processor(outbox, store)
    asyncio.run(batches.process(records))
    stored = dict(store.data)
    again = asyncio.run(batches.process(records))
    assert again.duplicates == 2 and again.lists == [] and len(outbox.lists) == 2
    assert store.data == stored


def test_states_are_not_written_when_the_lists_cannot_be_published():
    store, seq = MemoryStateStore(), Sequenced()
    with pytest.raises(RuntimeError, match="refused"):
        asyncio.run(processor(RecordingOutbox(fail=True), store).process([seq.event("alice", 3)]))
    assert store.data == {}


def test_a_batch_overtaken_by_a_rebalance_publishes_its_lists_but_stores_no_state():
    outbox, store, seq = RecordingOutbox(), MemoryStateStore(), Sequenced()
    with pytest.raises(OvertakenByRebalance):
        batch = processor(outbox, store).process([seq.event("alice", 3)], no_rebalance_since=lambda: False)
        asyncio.run(batch)
    assert len(outbox.lists) == 1 and store.data == {}


def test_the_memory_store_gives_back_what_was_written_per_partition():
    store = MemoryStateStore()
    state = UserState(hidden=make_artifact().model.zero_state(1)[0].numpy(), model_version="v1")
    asyncio.run(store.write({"u": state}, {"u": 2}))
    assert store.read({"u": 2})["u"].to_bytes() == state.to_bytes()
    assert store.read({"u": 1}) == {"u": None}
