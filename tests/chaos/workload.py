"""The chaos drill's input: events as real shops' producers send them, in a background thread.

Each record goes out the way one kind of producer would place it: murmur2 of the user id (Faust,
Java clients), librdkafka's CRC32 (kcat, confluent-kafka), or a null key on any partition. Mixed in:
malformed records, events on items the model does not know, and application-level retries (the same
event id sent again).
"""

import json
import random
import threading
import time
import zlib
from dataclasses import dataclass, field

from schemas.events import Event, EventType

PLACEMENTS = ("murmur2", "crc32", "null key")


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner for keyed records."""
    return zlib.crc32(key) % partitions


@dataclass
class WorkloadMix:
    users: int = 150
    malformed: float = 0.03
    unknown_items: float = 0.01
    retries: float = 0.02
    buys: float = 0.05


@dataclass
class Workload:
    """Produces at ``rate`` records per second until stopped; counts what it sent by kind."""

    bootstrap: str
    topics: dict[str, str]  # "click" and "buy" -> topic name
    partitions: dict[str, int]  # topic name -> partition count
    items: list[str]
    rate: float
    seed: int = 0
    mix: WorkloadMix = field(default_factory=WorkloadMix)
    sent: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-workload", daemon=True)
        self._rng = random.Random(self.seed)
        self._history: list[Event] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from kafka import KafkaProducer

        # Retries through a broker outage, in order: the drill kills the broker once.
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","),
            acks="all",
            linger_ms=5,
            enable_idempotence=True,
            delivery_timeout_ms=300_000,
        )
        started, n = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                delay = started + n / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                topic, key, value, partition, kind = self._next_record(n)
                future = producer.send(topic, key=key, value=value, partition=partition)
                future.add_callback(self._count, kind).add_errback(self._failed)
                n += 1
            producer.flush()
        finally:
            producer.close()

    def _count(self, kind: str, _metadata: object) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def _failed(self, _error: BaseException) -> None:
        self.failed += 1

    def _next_record(self, n: int) -> tuple[str, bytes | None, bytes, int | None, str]:
        rng, mix = self._rng, self.mix
        roll = rng.random()
        if roll < mix.malformed:
            topic = self.topics["click"]
            value = rng.choice([b"{not json", b"[" * 3000 + b"]" * 3000, json.dumps({"user_id": 1}).encode()])
            return topic, f"u{rng.randrange(mix.users)}".encode(), value, None, "malformed"
        if roll < mix.malformed + mix.retries and self._history:
            event, kind = rng.choice(self._history[-50:]), "retry"
        else:
            user = f"u{rng.randrange(mix.users)}"
            unknown = rng.random() < mix.unknown_items
            item = f"new-item-{n}" if unknown else rng.choice(self.items)
            event_type = EventType.BUY if rng.random() < mix.buys else EventType.CLICK
            event = Event(f"e{n}", user, item, 1_700_000_000.0 + n / 10, event_type)
            kind = "unknown item" if unknown else "event"
            self._history.append(event)
        topic = self.topics["buy" if event.event_type == EventType.BUY else "click"]
        key = event.user_id.encode()
        placement = rng.choice(PLACEMENTS)
        if placement == "crc32":
            return topic, key, event.to_bytes(), crc32_partition(key, self.partitions[topic]), kind
        if placement == "null key":
            return topic, None, event.to_bytes(), rng.randrange(self.partitions[topic]), kind
        return topic, key, event.to_bytes(), None, kind
