"""The :class:`Outbox` seam: where a micro-batch's lists and dead letters go.

:class:`KafkaOutbox` sends them as record batches and returns once Kafka has acknowledged every one;
only then may the batch's states be written and its offsets committed.
"""

import asyncio
from typing import Protocol

import faust

from schemas.dead_letters import DeadLetter
from streamer.worker.metrics import DEAD_LETTERS
from streamer.worker.producing import kafka_producer, partitioner, send_records
from streamer.worker.topics import Topics


class Outbox(Protocol):
    async def publish(self, lists: list[tuple[str, bytes]], dead_letters: list[DeadLetter]) -> None:
        """Deliver ``lists`` ((user id, list bytes), keyed by user) and ``dead_letters``; return once
        they are durable, raise if any is not."""
        ...


class KafkaOutbox:
    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.app = app
        self.topics = topics

    async def publish(self, lists: list[tuple[str, bytes]], dead_letters: list[DeadLetter]) -> None:
        producer = await kafka_producer(self.app)
        lists_topic = self.topics.recommendations.get_topic_name()
        partition_of = await partitioner(producer, lists_topic)
        records = [(partition_of(key), key, value) for key, value in ((u.encode(), v) for u, v in lists)]
        pending = [batch.future for batch in await send_records(producer, lists_topic, records)]
        pending += await send_dead_letters(self.topics.dead_letters, dead_letters)
        await asyncio.gather(*pending)


async def send_dead_letters(topic: faust.TopicT, letters: list[DeadLetter]) -> list[asyncio.Future]:
    """Queue ``letters`` on ``topic``; the futures resolve when Kafka has them."""
    pending = []
    for letter in letters:
        pending.append(await topic.send(key=letter.kafka_key, value=letter.to_bytes()))
        DEAD_LETTERS.labels(letter.reason).inc()
    return pending
