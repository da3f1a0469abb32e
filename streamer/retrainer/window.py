"""The retrainer's rolling window of recent events, persisted in RocksDB (rocksdict).

Events and the consumer positions they came from are written in one atomic batch, so after a
restart the retrainer resumes exactly where its window ends: nothing lost, nothing counted twice.
Keys sort by event time, so trimming drops the oldest events first.
"""

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from rocksdict import Rdict, WriteBatch

from schemas.events import Event

EVENT_PREFIX = b"e|"
POSITION_PREFIX = b"p|"
COUNTER_KEY = b"m|since_training"
_TIME = struct.Struct(">d")  # big-endian non-negative doubles sort like the numbers


def event_key(event: Event, topic: str, partition: int, offset: int) -> bytes:
    return EVENT_PREFIX + _TIME.pack(event.event_time) + f"|{topic}|{partition}|{offset}".encode()


class EventWindow:
    def __init__(self, path: Path, max_events: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path / "window"))
        self.max_events = max_events
        self.count = sum(1 for _ in self._keys(EVENT_PREFIX))

    def close(self) -> None:
        self.db.close()

    def add(
        self, records: Iterable[tuple[Event, str, int, int]], positions: dict[tuple[str, int], int]
    ) -> int:
        """Store ``(event, topic, partition, offset)`` records and the next offset to read per
        (topic, partition), atomically; return how many events were new."""
        batch = WriteBatch()
        added = 0
        for event, topic, partition, offset in records:
            key = event_key(event, topic, partition, offset)
            if self.db.get(key) is None:
                batch.put(key, event.to_bytes())
                added += 1
        for (topic, partition), offset in positions.items():
            batch.put(POSITION_PREFIX + f"{topic}|{partition}".encode(), offset)
        batch.put(COUNTER_KEY, self.events_since_training() + added)
        self.db.write(batch)
        self.count += added
        self._trim()
        return added

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read for every (topic, partition) seen so far."""
        found = {}
        for key in self._keys(POSITION_PREFIX):
            topic, partition = key[len(POSITION_PREFIX) :].decode().rsplit("|", 1)
            found[(topic, int(partition))] = self.db[key]
        return found

    def events(self) -> list[Event]:
        """The window, oldest first."""
        return [Event.from_stored(self.db[key]) for key in self._keys(EVENT_PREFIX)]

    def events_since_training(self) -> int:
        return self.db.get(COUNTER_KEY, 0)

    def mark_trained(self) -> None:
        self.db[COUNTER_KEY] = 0

    def _trim(self) -> None:
        excess = self.count - self.max_events
        if excess <= 0:
            return
        batch = WriteBatch()
        for key, _ in zip(self._keys(EVENT_PREFIX), range(excess), strict=False):
            batch.delete(key)
        self.db.write(batch)
        self.count -= excess

    def _keys(self, prefix: bytes) -> Iterator[bytes]:
        iterator = self.db.iter()
        iterator.seek(prefix)
        while iterator.valid() and iterator.key().startswith(prefix):
            yield iterator.key()
            iterator.next()
