"""Records sent in bulk (``streamer.worker.producing``) all arrive, in order within each partition, where
Kafka's default partitioning puts them, and each sent batch knows the offset of its last record."""

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streamer.worker.producing import SentBatch, partitioner, send_records

pytestmark = pytest.mark.integration

PARTITIONS = 3


def test_records_split_over_batches_arrive_in_order_with_their_offsets(kafka_bootstrap, unique_name):
    topic = unique_name("bulk")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    keys = [f"user-{n % 41}".encode() for n in range(400)]
    values = [f"{n:04d}".encode() * 100 for n in range(400)]  # 400 bytes: ~10 per 4 KiB batch

    async def send() -> tuple[list[tuple[int, bytes, bytes]], list[SentBatch]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_batch_size=4096)
        await producer.start()
        try:
            partition_of = await partitioner(producer, topic)
            records = [(partition_of(key), key, value) for key, value in zip(keys, values, strict=True)]
            sent = await send_records(producer, topic, records)
            await asyncio.gather(*(batch.future for batch in sent))
            return records, sent
        finally:
            await producer.stop()

    records, sent = asyncio.run(send())
    assert sum(batch.records for batch in sent) == len(records) and len(sent) > 3 * PARTITIONS

    read = asyncio.run(read_all(kafka_bootstrap, topic, len(records)))
    expected: defaultdict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for partition, key, value in records:
        expected[partition].append((key, value))
    assert {p: [(key, value) for key, value, _ in got] for p, got in read.items()} == expected
    for partition, got in read.items():
        assert max(b.last_offset() for b in sent if b.partition == partition) == got[-1][2]


async def read_all(bootstrap: str, topic: str, count: int) -> dict[int, list[tuple[bytes, bytes, int]]]:
    """Partition -> [(key, value, offset)] of the first ``count`` records of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        read: defaultdict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
        async with asyncio.timeout(30):
            while sum(map(len, read.values())) < count:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    read[tp.partition].extend((m.key, m.value, m.offset) for m in messages)
        return dict(read)
    finally:
        await consumer.stop()
