"""Which items may be listed: the item-catalog topic (:mod:`schemas.catalog`) held in memory.

:class:`Catalog` is item id -> latest entry, with the unavailable items as a set and, for a model's
vocabulary, as the item indices a scorer excludes. :class:`CatalogFeed` fills it: every worker reads
the whole topic up to its end before it serves (a sold-out item must not come back after a restart),
then follows it, like :mod:`streamer.worker.model_feed` follows model updates (no consumer group).
"""

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.catalog import CatalogEntry, item_id_of
from schemas.errors import InvalidMessage
from streamer.common.admin import ensure_catalog_topic, partition_counts
from streamer.common.kafka_config import aiokafka_config
from streamer.common.settings import Settings
from streamer.worker.following import started_consumer
from streamer.worker.metrics import CATALOG_RECORDS_REFUSED, CATALOG_UNAVAILABLE

log = logging.getLogger(__name__)

# Vocabularies whose indices are kept: the serving model's, and one more while a swap is staged or
# another caller ranks with the previous model.
VOCABULARIES_CACHED = 2
PARTITIONS_KNOWN_WITHIN_S = 30.0
SHOWN_KEY_CHARS = 80


class _VocabularyIndices:
    """The indices of the unavailable items one vocabulary knows, kept up to date change by change.
    Looking every unavailable item up again after a change took 11 ms for 10,000 unavailable items of
    100,000; sorting the kept indices into a tensor takes 1.3 ms (2 busy cores)."""

    def __init__(self, vocabulary: Mapping[str, int], unavailable: Iterable[str]) -> None:
        self.vocabulary = vocabulary  # held, so that its id() is not reused while cached
        self._known = {i for item in unavailable if (i := vocabulary.get(item)) is not None}
        self._tensor: torch.Tensor | None = None

    def changed(self, item_id: str, unavailable: bool) -> None:
        index = self.vocabulary.get(item_id)
        if index is None:
            return
        if unavailable:
            self._known.add(index)
        else:
            self._known.discard(index)
        self._tensor = None

    def tensor(self) -> torch.Tensor:
        if self._tensor is None:
            indices = np.fromiter(self._known, dtype=np.int64, count=len(self._known))
            indices.sort()
            self._tensor = torch.from_numpy(indices)
        return self._tensor


class Catalog:
    """Item id -> the item's latest catalog entry. An item the catalog does not know (never published,
    or deleted by a tombstone) is available.

    Records are applied by one thread at a time (the loading thread at start, then the worker's event
    loop); reads may come from any thread (a lock keeps the set, the indices and the version
    consistent).
    """

    def __init__(self) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        self._unavailable: set[str] = set()
        self._version = 0
        self._snapshot: tuple[int, frozenset[str]] = (0, frozenset())
        self._indices: dict[int, _VocabularyIndices] = {}  # id(vocabulary) ->, least recently used first
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        """Changes whenever an item's availability changes, and only then."""
        return self._version

    @property
    def unavailable(self) -> frozenset[str]:
        """The ids of the unavailable items (the same object until the next change)."""
        with self._lock:
            if self._snapshot[0] != self._version:
                self._snapshot = (self._version, frozenset(self._unavailable))
            return self._snapshot[1]

    def __len__(self) -> int:
        """How many items the catalog knows, available or not."""
        return len(self._entries)

    def get(self, item_id: str) -> CatalogEntry | None:
        """The item's latest entry, or None if the catalog does not know it."""
        return self._entries.get(item_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the catalog topic; a null ``value`` deletes the item. A malformed record
        is logged, counted (``streamrec_catalog_records_refused_total{reason}``) and ignored: the item
        keeps its previous entry, since guessing either way could list a sold-out item or hide one."""
        try:
            item_id = item_id_of(key)
            entry = None if value is None else CatalogEntry.from_bytes(value)
        except InvalidMessage as exc:
            CATALOG_RECORDS_REFUSED.labels(exc.reason).inc()
            log.warning("ignoring a catalog record with key %s: %s", _shown(key), exc)
            return
        with self._lock:
            if entry is None:
                self._entries.pop(item_id, None)
            else:
                self._entries[item_id] = entry
            unavailable = entry is not None and not entry.available
            if unavailable == (item_id in self._unavailable):
                return
            if unavailable:
                self._unavailable.add(item_id)
            else:
                self._unavailable.discard(item_id)
            for indices in self._indices.values():
                indices.changed(item_id, unavailable)
            self._version += 1
            CATALOG_UNAVAILABLE.set(len(self._unavailable))

    def unavailable_indices(self, item_index: Mapping[str, int]) -> torch.Tensor:
        """The indices in ``item_index`` (a model's vocabulary: item id -> index) of the unavailable
        items it knows, sorted, int64; unavailable items it does not know are left out. The same
        tensor until the availability of an item of this vocabulary changes (it is called once per
        micro-batch); callers share it and must not modify it, nor the vocabulary while it is in use."""
        with self._lock:
            cached = self._indices.pop(id(item_index), None)
            if cached is None:
                cached = _VocabularyIndices(item_index, self._unavailable)
            self._indices[id(item_index)] = cached  # last: the most recently used
            while len(self._indices) > VOCABULARIES_CACHED:
                del self._indices[next(iter(self._indices))]
            return cached.tensor()


class CatalogFeed:
    """The catalog side of a worker: the whole topic at start, then every later record."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = Catalog() if catalog is None else catalog
        self._follow_from: dict[int, int] = {}  # partition -> the offset after the last record read

    def load_initial(self) -> None:
        """Create the topic if it is missing, then apply every record up to the end offsets it has
        now, from the beginning; return once they are all applied."""
        ensure_catalog_topic(self.settings)
        started = time.monotonic()
        topic = self.settings.topics.catalog
        partitions = [TopicPartition(topic, p) for p in range(_partition_count(self.settings, topic))]
        # aiokafka, as follow() reads: it read 100,000 catalog records in 0.8 s, kafka-python in 4.4 s.
        # In a thread with a loop of its own, since the caller may be running one.
        with ThreadPoolExecutor(1, thread_name_prefix="catalog-load") as thread:
            self._follow_from = thread.submit(asyncio.run, self._read_to_end(partitions)).result()
        log.info(
            "item catalog %s read in %.1f s: %d items, %d unavailable",
            topic,
            time.monotonic() - started,
            len(self.catalog),
            len(self.catalog.unavailable),
        )

    async def follow(self) -> None:
        """Apply every record published after :meth:`load_initial`, for as long as the worker runs."""
        if not self._follow_from:
            raise RuntimeError("CatalogFeed.follow() needs load_initial() first")
        topic = self.settings.topics.catalog
        consumer = await started_consumer(self.settings, "the item catalog")
        try:
            partitions = [TopicPartition(topic, p) for p in self._follow_from]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self._follow_from[tp.partition])
            async for record in consumer:
                self.catalog.apply(record.key, record.value)
        finally:
            await consumer.stop()

    async def _read_to_end(self, partitions: list[TopicPartition]) -> dict[int, int]:
        """Apply ``partitions`` from the beginning up to their current end offsets; the position
        reached per partition (a fetch may go past the end offsets)."""
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **aiokafka_config(self.settings))
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                while await consumer.position(tp) < ends[tp]:
                    for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                        self.catalog.apply(record.key, record.value)
            return {tp.partition: await consumer.position(tp) for tp in partitions}
        finally:
            await consumer.stop()


def _partition_count(settings: Settings, topic: str) -> int:
    """How many partitions ``topic`` has; just after it was created the broker may not list it yet."""
    deadline = time.monotonic() + PARTITIONS_KNOWN_WITHIN_S
    while not (count := partition_counts(settings, [topic])[topic]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kafka lists no partitions of the item-catalog topic {topic!r}")
        time.sleep(0.2)  # poll interval
    return count


def _shown(key: bytes | None) -> str:
    return repr(key if key is None or len(key) <= SHOWN_KEY_CHARS else key[:SHOWN_KEY_CHARS] + b"...")
