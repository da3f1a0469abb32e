"""The RocksDB state store writes a state to its changelog first and to the local database only once
Kafka has it, so a crash never leaves a local state that no other copy of the partition will see.

A real Faust app, table and RocksDB databases; the producer is replaced by one whose acknowledgements
the test gives (or withholds)."""

import asyncio

import numpy as np
import pytest
from aiokafka.structs import RecordMetadata
from faust.types import TP

from streamer.common.settings import Settings
from streamer.worker import producing
from streamer.worker.faust_app import create_app
from streamer.worker.state import UserState
from streamer.worker.store import rocksdb
from streamer.worker.store.rocksdb import RocksDBStateStore

PARTITION = 1


class HeldAcknowledgements:
    """Stands in for ``send_records``: every batch's future resolves only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[producing.SentBatch] = []

    async def send_records(self, producer, topic, records) -> list[producing.SentBatch]:
        by_partition: dict[int, int] = {}
        for partition, *_ in records:
            by_partition[partition] = by_partition.get(partition, 0) + 1
        batches = [
            producing.SentBatch(topic, partition, count, asyncio.get_running_loop().create_future())
            for partition, count in by_partition.items()
        ]
        self.sent += batches
        return batches

    def acknowledge(self, first_offset: int) -> None:
        for batch in self.sent:
            tp = TP(batch.topic, batch.partition)
            batch.future.set_result(RecordMetadata(batch.topic, batch.partition, tp, first_offset, -1, -1, 0))

    def fail(self, error: Exception) -> None:
        for batch in self.sent:
            batch.future.set_exception(error)


@pytest.fixture
def store(tmp_path, monkeypatch) -> tuple[RocksDBStateStore, HeldAcknowledgements]:
    settings = Settings.from_env({"STREAMREC_DATA_DIR": str(tmp_path), "STREAMREC_TOPIC_PARTITIONS": "3"})
    held = HeldAcknowledgements()

    async def no_producer(app):
        return None

    monkeypatch.setattr(rocksdb, "kafka_producer", no_producer)
    monkeypatch.setattr(rocksdb, "send_records", held.send_records)
    state_store = RocksDBStateStore(create_app(settings), settings)
    return state_store, held


def a_state() -> UserState:
    return UserState(np.ones((1, 4), np.float32), "v1", ["i9"], [0])


def test_a_state_is_stored_locally_only_once_the_changelog_has_it(store):
    state_store, held = store

    async def scenario() -> None:
        writing = asyncio.ensure_future(state_store.write({"alice": a_state()}, {"alice": PARTITION}))
        while not held.sent:
            await asyncio.sleep(0)  # let the write run up to the acknowledgement it waits for
        assert state_store.read({"alice": PARTITION}) == {"alice": None}  # a crash now: no local copy
        held.acknowledge(first_offset=41)
        await writing

    asyncio.run(scenario())
    assert state_store.read({"alice": PARTITION})["alice"] is not None
    tp = TP(state_store.changelog_topic, PARTITION)
    assert state_store.table.data.persisted_offset(tp) == 41


def test_a_failed_changelog_write_raises_and_stores_nothing_locally(store):
    state_store, held = store

    async def scenario() -> None:
        writing = asyncio.ensure_future(state_store.write({"bob": a_state()}, {"bob": PARTITION}))
        while not held.sent:
            await asyncio.sleep(0)
        held.fail(RuntimeError("changelog partition offline"))
        with pytest.raises(RuntimeError, match="changelog partition offline"):
            await writing

    asyncio.run(scenario())
    assert state_store.read({"bob": PARTITION}) == {"bob": None}
