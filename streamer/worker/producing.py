"""Sending a micro-batch's records to Kafka in bulk: one record batch (and one future) per partition.

A plain ``producer.send`` per record costs a future, an accumulator lookup and an acknowledgement
callback per record; filling aiokafka's ``BatchBuilder`` directly costs an append. Records are sent
through the app's producer, so Faust's flush before each offset commit covers them too.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

Record = tuple[int, bytes, bytes]  # (partition, key, value)
TimedRecord = tuple[int, bytes, bytes, int | None]  # and the timestamp in ms (None: now)


@dataclass(frozen=True)
class SentBatch:
    """Records handed to the producer for one partition; ``future`` resolves to the metadata of the
    batch's first record once Kafka has acknowledged all of them."""

    topic: str
    partition: int
    records: int
    future: asyncio.Future

    def last_offset(self) -> int:
        return self.future.result().offset + self.records - 1


async def kafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under the app's Faust producer (started if needed)."""
    producer = await app.maybe_start_producer()
    # Faust exposes no public accessor for it; _ensure_producer is what its own send() uses.
    return producer._ensure_producer()


async def partitioner(producer: AIOKafkaProducer, topic: str) -> "KeyPartitioner":
    return KeyPartitioner(sorted(await producer.partitions_for(topic)))


def default_partition(key: bytes, partitions: int) -> int:
    """The partition (of ``partitions``) Kafka's default partitioner gives a record keyed ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class KeyPartitioner:
    """Kafka's default partitioning of keyed records (murmur2 of the key), as every client does it."""

    partitions: list[int]

    def __call__(self, key: bytes) -> int:
        return self.partitions[default_partition(key, len(self.partitions))]


async def send_records(
    producer: AIOKafkaProducer, topic: str, records: Iterable[Record | TimedRecord]
) -> list[SentBatch]:
    """Queue ``records`` (in order within each partition) as few record batches as fit."""
    builders: dict[int, tuple[BatchBuilder, int]] = {}  # partition -> (builder, records in it)
    sent: list[SentBatch] = []

    async def flush(partition: int) -> None:
        builder, count = builders.pop(partition)
        future = await producer.send_batch(builder, topic, partition=partition)
        sent.append(SentBatch(topic, partition, count, future))

    for partition, key, value, *timestamp in records:
        stamp = timestamp[0] if timestamp else None
        if partition in builders:
            builder, count = builders[partition]
            if builder.append(key=key, value=value, timestamp=stamp) is not None:
                builders[partition] = (builder, count + 1)
                continue
            await flush(partition)  # full: send it and start the next one
        builder = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=stamp) is None:
            raise ValueError(f"a record of {len(value)} bytes does not fit a batch for {topic}")
        builders[partition] = (builder, 1)
    for partition in list(builders):
        await flush(partition)
    return sent
