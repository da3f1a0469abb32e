"""The router: click and buy records, a fetch at a time, to the sequencing topic or the dead letters.

Routing needs no state, so it does not go through Faust's streams: the consumer hands each fetch's
input records here in one list (:mod:`streamer.worker.consumer`), and one task routes them in order. Faust's
per-record stream machinery cost about 100 µs of CPU per event, so a second agent for this hop
doubled the worker's CPU per event (262 -> 525 µs draining rsc15, bench/README.md).

Fetches are done when Kafka has acknowledged their forwards and dead letters; only then may
their offsets be committed. What queued meanwhile is routed next, in one go, so a fetch that
fails is read again before any later record of its partitions is forwarded: a user's records
reach the sequencing topic in input order, which is what the per-user applied offsets rely on.
"""

import asyncio
import logging
import time
from collections import Counter

import faust
from faust.types import Message

from streamer.common.settings import Settings
from streamer.worker.metrics import EVENTS_IN
from streamer.worker.offsets import OffsetGuard
from streamer.worker.outbox import send_dead_letters
from streamer.worker.producing import kafka_producer, send_records
from streamer.worker.records import InputRecord
from streamer.worker.seeking import handle_in_order
from streamer.worker.sequencing import route

log = logging.getLogger(__name__)

# Fetches queued for routing at most; a full queue holds the consumer's fetch loop back.
MAX_QUEUED_FETCHES = 16


class Router:
    def __init__(
        self, app: faust.App, settings: Settings, guard: OffsetGuard, dead_letters: faust.TopicT
    ) -> None:
        self.app = app
        self.settings = settings
        self.guard = guard
        self.dead_letters = dead_letters
        self.topics = frozenset(settings.topic_kinds())
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue(MAX_QUEUED_FETCHES)

    async def submit(self, messages: list[Message]) -> None:
        """Queue the input records of one fetch (called by the consumer)."""
        await self._queue.put(messages)

    async def run(self) -> None:
        """Route queued fetches one after the other, for as long as the worker runs."""
        while True:
            messages = await self._queue.get()
            while not self._queue.empty():  # whatever queued while the last ones were acknowledged
                messages += self._queue.get_nowait()
            try:
                await self.route_fetch(messages)
            except Exception:
                log.exception("routing %d input records failed; reading them again", len(messages))

    async def route_fetch(self, messages: list[Message]) -> None:
        await handle_in_order(self.app, self.guard, messages, self._forward)

    async def _forward(self, messages: list[Message]) -> None:
        records = [
            (InputRecord(m.topic, m.partition, m.offset, m.key, m.value), _timestamp_ms(m)) for m in messages
        ]
        for topic, count in Counter(m.topic for m in messages).items():
            EVENTS_IN.labels(topic).inc(count)
        settings = self.settings
        routed = route(
            records,
            settings.topic_kinds(),
            settings.topics.partitions,
            time.time(),
            settings.worker.max_future_skew_s,
        )
        producer = await kafka_producer(self.app)
        sent = await send_records(producer, settings.sequenced_topic, routed.forwards)
        pending = [batch.future for batch in sent] + await send_dead_letters(
            self.dead_letters, routed.dead_letters
        )
        await asyncio.gather(*pending)


def _timestamp_ms(message: Message) -> int | None:
    """The input record's Kafka timestamp, kept on its forward: latency counts from the original."""
    timestamp = message.timestamp
    return None if timestamp is None or timestamp <= 0 else int(timestamp * 1000)
