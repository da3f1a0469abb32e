"""The production state store: user id -> :class:`streamer.worker.state.UserState`, in RocksDB with a
changelog.

It is a Faust table: Faust creates its changelog topic, opens one RocksDB database per assigned
partition, restores them from the changelog on assignment, keeps standbys, and flushes the producer
before committing source offsets. Reads and writes, though, go in bulk, the way Faust itself applies
a changelog batch (``Store.apply_changelog_batch``): per partition one multi-get, one ``WriteBatch``,
one changelog record batch, and the changelog offset persisted once. Faust's per-key API costs a
RocksDB write, a changelog send and an offset write for every key.

The records are the ones Faust's own table writes would be (key: the user id's bytes, value:
``UserState.to_bytes()``, partition: that of the user's events), so its recovery reads them as its own.
"""

import logging
from collections import defaultdict
from collections.abc import Mapping

import faust
from faust.types import TP
from rocksdict import Rdict, WriteBatch

from streamer.common.settings import Settings
from streamer.worker.producing import SentBatch, kafka_producer, send_records
from streamer.worker.state import StateDecodeError, UserState

log = logging.getLogger(__name__)


class RocksDBStateStore:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.table = app.Table(
            "user-state",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topics.partitions,
            options={
                "driver": "rocksdict",
                "block_cache_size": settings.worker.rocksdb_block_cache_mb << 20,
                "write_buffer_size": settings.worker.rocksdb_write_buffer_mb << 20,
            },
            help="GRU hidden state, recent items and applied offsets per user",
        )
        self.corrupt_states = 0
        self._changelog_error: BaseException | None = None

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    def read(self, partition_of_user: Mapping[str, int]) -> dict[str, UserState | None]:
        """The stored state of each user (None if there is none) from the partition of its events."""
        users_by_partition: defaultdict[int, list[str]] = defaultdict(list)
        for user, partition in partition_of_user.items():
            users_by_partition[partition].append(user)
        states: dict[str, UserState | None] = {}
        for partition, users in users_by_partition.items():
            raws = self._db(partition).get([user.encode() for user in users])
            states.update(
                (user, self._decode(user, raw, partition)) for user, raw in zip(users, raws, strict=True)
            )
        return states

    async def write(self, states: Mapping[str, UserState], partition_of_user: Mapping[str, int]) -> None:
        """Store ``states`` locally and queue them on the changelog. Returns without waiting for the
        changelog's acknowledgement: Faust flushes the producer before it commits source offsets.
        A changelog batch that failed since the last call (after the producer's own retries) is
        raised here and stops the agent, as a failed list publish does."""
        if self._changelog_error is not None:
            raise self._changelog_error
        batches: defaultdict[int, WriteBatch] = defaultdict(lambda: WriteBatch(raw_mode=True))
        records = []
        for user, state in states.items():
            partition, key, value = partition_of_user[user], user.encode(), state.to_bytes()
            batches[partition].put(key, value)
            records.append((partition, key, value))
        for partition, batch in batches.items():
            self._db(partition).write(batch)
        producer = await kafka_producer(self.app)
        for sent in await send_records(producer, self.changelog_topic, records):
            sent.future.add_done_callback(lambda _, sent=sent: self._on_changelog_sent(sent))

    def _on_changelog_sent(self, sent: SentBatch) -> None:
        """Persist the changelog offset the local database now covers, as Faust does per record:
        recovery after a restart reads the changelog from there on."""
        if sent.future.cancelled():
            return
        if (error := sent.future.exception()) is not None:
            log.error("changelog write to %s[%d] failed: %r", sent.topic, sent.partition, error)
            self._changelog_error = error
            return
        tp = TP(sent.topic, sent.partition)
        store = self.table.data
        if sent.last_offset() > (store.persisted_offset(tp) or -1):
            store.set_persisted_offset(tp, sent.last_offset())

    def _db(self, partition: int) -> Rdict:
        # Faust opens a partition's database on assignment; this is the lookup its own reads use.
        return self.table.data._db_for_partition(partition)

    def _decode(self, user: str, raw: bytes | None, partition: int) -> UserState | None:
        if raw is None:
            return None
        try:
            return UserState.from_bytes(raw, partition)
        except StateDecodeError as exc:
            self.corrupt_states += 1
            log.error("user %r: stored state unreadable (%s); starting from zero", user, exc)
            return None
