"""The consumer of the worker's follower tasks (model updates, the item catalog): no consumer group,
so every worker reads every record of the topics it follows."""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from streamer.common.kafka_config import aiokafka_config
from streamer.common.settings import Settings

log = logging.getLogger(__name__)

FOLLOW_RETRY_S = 2.0


async def started_consumer(settings: Settings, following: str) -> AIOKafkaConsumer:
    """A started consumer without a group, retried while Kafka cannot be reached: followers run as
    Faust tasks once the worker is ready, and a task that raises stops the whole worker."""
    while True:
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **aiokafka_config(settings))
        try:
            await consumer.start()
            return consumer
        except KafkaConnectionError as exc:
            await consumer.stop()
            log.warning("cannot follow %s yet, retrying in %s s: %s", following, FOLLOW_RETRY_S, exc)
            await asyncio.sleep(FOLLOW_RETRY_S)
