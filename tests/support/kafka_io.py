"""Producing events and reading topics in tests, with kafka-python (blocking, simple)."""

import time

from kafka import KafkaConsumer, KafkaProducer

from schemas.events import Event
from streamer.tools.worker_process import WorkerProcess


def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    """Send (topic, key, value) messages in order and wait until Kafka has all of them."""
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def produce_events(bootstrap: str, topic: str, events: list[Event]) -> None:
    produce(bootstrap, [(topic, e.user_id.encode(), e.to_bytes()) for e in events])


class TopicReader:
    """Reads a topic from its beginning, across calls, so each call returns only new messages."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap.split(","),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=500,
        )

    def read(self, count: int, timeout_s: float = 90.0, worker: WorkerProcess | None = None) -> list:
        """Return at least ``count`` new messages; fail if they do not arrive within ``timeout_s``
        or if ``worker`` dies first (with the end of its log)."""
        messages = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < count and time.monotonic() < deadline:
            if worker is not None and not worker.alive():
                raise AssertionError(f"the worker died; its log ends:\n{worker.log_tail()}")
            messages.extend(self.consumer)
        assert len(messages) >= count, f"expected {count} messages, got {len(messages)} within {timeout_s}s"
        return messages

    def read_quiet(self, wait_s: float) -> list:
        """Everything that arrives within ``wait_s`` (to check that nothing more arrives)."""
        messages = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            messages.extend(self.consumer)
        return messages

    def close(self) -> None:
        self.consumer.close()


def latest_per_key(bootstrap: str, topic: str, expected_keys: set[bytes], timeout_s: float = 60.0) -> dict:
    """The last value of each key in ``topic`` (e.g. a table changelog), read from the beginning."""
    reader = TopicReader(bootstrap, topic)
    latest: dict[bytes, bytes] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while not expected_keys <= latest.keys() and time.monotonic() < deadline:
            for message in reader.consumer:
                latest[message.key] = message.value
        # The changelog may hold later values for keys already seen: drain what is there.
        for message in reader.consumer:
            latest[message.key] = message.value
    finally:
        reader.close()
    return latest
