"""The broker from ``kafka_bootstrap`` works with both Kafka clients the project uses, and the
``streamrec kafka`` commands start, find and stop a detached broker."""

import asyncio
import json
import re
import subprocess
import time
from contextlib import suppress

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from streamer.cli import main

pytestmark = pytest.mark.integration

PARTITIONS = 3
TIMEOUT_S = 30.0
RECORDS = [(i % PARTITIONS, f"key-{i}".encode(), f"value-{i}".encode()) for i in range(9)]


async def _create_topic(bootstrap: str, topic: str) -> list[int]:
    """Create ``topic`` with aiokafka's admin client (CreateTopics v2+, which Kafka 4 requires);
    return its partition ids as the broker describes them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
        assert [error_code for _, error_code, *_ in response.topic_errors] == [0]
        [description] = await admin.describe_topics([topic])
        return sorted(partition["partition"] for partition in description["partitions"])
    finally:
        await admin.close()


async def _consume_with_aiokafka(bootstrap: str, topic: str, group: str) -> set[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    received = set()
    try:
        with suppress(TimeoutError):  # the assertion then shows what is missing
            async with asyncio.timeout(TIMEOUT_S):
                async for message in consumer:
                    received.add((message.partition, message.key, message.value))
                    if len(received) == len(RECORDS):
                        break
    finally:
        await consumer.stop()
    return received


async def _produce_with_aiokafka(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, key, value in RECORDS:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def _produce_with_kafka_python(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for partition, key, value in RECORDS:
            producer.send(topic, value, key=key, partition=partition)
        producer.flush(timeout=TIMEOUT_S)
    finally:
        producer.close()


def _consume_with_kafka_python(bootstrap: str, topic: str, group: str) -> set[tuple[int, bytes, bytes]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest")
    received = set()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(received) < len(RECORDS) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.update((record.partition, record.key, record.value) for record in records)
    finally:
        consumer.close()
    return received


def test_aiokafka_creates_a_topic_with_three_partitions(kafka_bootstrap, unique_name):
    topic = unique_name("topic")
    assert asyncio.run(_create_topic(kafka_bootstrap, topic)) == [0, 1, 2]


def test_kafka_python_producer_to_aiokafka_consumer(kafka_bootstrap, unique_name):
    topic = unique_name("clicks")
    asyncio.run(_create_topic(kafka_bootstrap, topic))
    _produce_with_kafka_python(kafka_bootstrap, topic)
    received = asyncio.run(_consume_with_aiokafka(kafka_bootstrap, topic, unique_name("group")))
    assert received == set(RECORDS)


def test_aiokafka_producer_to_kafka_python_consumer(kafka_bootstrap, unique_name):
    topic = unique_name("buys")
    asyncio.run(_create_topic(kafka_bootstrap, topic))
    asyncio.run(_produce_with_aiokafka(kafka_bootstrap, topic))
    received = _consume_with_kafka_python(kafka_bootstrap, topic, unique_name("group"))
    assert received == set(RECORDS)


def test_cli_starts_a_detached_broker_and_stops_it(tmp_path, capsys):
    state_dir = tmp_path / "kafka"
    assert main(["kafka", "start", "--state-dir", str(state_dir), "--partitions", "2"]) == 0
    export_line = capsys.readouterr().out.splitlines()[-1]
    bootstrap = re.fullmatch(r"export KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)", export_line).group(1)
    try:
        assert main(["kafka", "status", "--state-dir", str(state_dir)]) == 0
        assert bootstrap in capsys.readouterr().out
        pid = json.loads((state_dir / "broker.json").read_text())["pid"]
        producer = KafkaProducer(bootstrap_servers=bootstrap)  # auto-creates the topic with --partitions
        assert producer.partitions_for("auto-created") == {0, 1}
        producer.close()
    finally:
        assert main(["kafka", "stop", "--state-dir", str(state_dir)]) == 0
    assert main(["kafka", "status", "--state-dir", str(state_dir)]) == 3
    assert not state_dir.exists()
    assert _process_gone(pid)


def _process_gone(pid: int) -> bool:
    """Exited, or a zombie: the broker was started in this process, which has not reaped it."""
    ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return ps.stdout.strip() == "" or ps.stdout.startswith("Z")
