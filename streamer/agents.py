"""The stream processor: click and buy events in, recommendation lists and dead letters out.

For each micro-batch: parse the raw records, read each user's state once, apply the batch with the
model, publish lists and dead letters and wait until Kafka has them, and only then write the new
states. A crash before the state write replays the batch from the old states and re-sends identical
lists; a crash after it finds the events already applied (per-user offsets) and skips them.
"""

import asyncio
import logging
import time
from collections import Counter

import faust
from faust.types import TP

from streamer.app import app, settings
from streamer.engine import BatchResult
from streamer.heap import freeze_startup_heap
from streamer.metrics import (
    BATCH_SIZE,
    DEAD_LETTERS,
    DUPLICATES,
    END_TO_END_LATENCY,
    EVENTS_IN,
    FETCH_GAPS,
    LISTS_OUT,
    NEW_SESSIONS,
    REENCODED,
)
from streamer.model_swap import ModelFeed
from streamer.offsets import OffsetGuard
from streamer.producing import kafka_producer, partitioner, send_records
from streamer.records import InputRecord, ParsedEvent, parse_record
from streamer.tables import UserStateTable
from streamer.topics import declare_topics

topics = declare_topics(app, settings)
user_states = UserStateTable(app, settings)
models = ModelFeed(settings)
topic_kinds = settings.topic_kinds()
offset_guard = OffsetGuard()
log = logging.getLogger(__name__)


@app.on_worker_init.connect
def load_first_model(sender: faust.App, **kwargs: object) -> None:
    # Before the worker joins the group: a missing or bad model stops it here, with the reason.
    # Faust sends this signal twice when started through app.main(); load once.
    if models.holder.version is None:
        models.load_initial()
        freeze_startup_heap()


@app.on_partitions_revoked.connect
async def forget_revoked(sender: faust.App, revoked: set[TP], **kwargs: object) -> None:
    offset_guard.forget((tp.topic, tp.partition) for tp in revoked)


@app.task
async def follow_model_updates() -> None:
    await models.follow()


@app.agent(topics.events)
async def apply_events(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_ms / 1000):
        await process_batch(batch)


async def in_partition_order(batch: list[faust.EventT]) -> list[faust.EventT]:
    """The events of ``batch`` that follow their partition's previous one (see streamer.offsets);
    where a partition jumped ahead, seek back so the skipped events are fetched again."""
    accepted, gaps = offset_guard.split([event.message for event in batch])
    for (topic, partition), offset in gaps.items():
        log.warning("%s[%d] jumped past offset %d; seeking back to it", topic, partition, offset)
        FETCH_GAPS.inc()
        await app.consumer.seek(TP(topic, partition), offset)
    return batch if len(accepted) == len(batch) else [batch[i] for i in accepted]


async def process_batch(batch: list[faust.EventT]) -> None:
    batch = await in_partition_order(batch)
    BATCH_SIZE.observe(len(batch))
    now = time.time()
    parsed: list[ParsedEvent] = []
    dead_letters = []
    partition_of_user: dict[str, int] = {}  # the table partition: that of the user's events
    per_topic: Counter[str] = Counter()
    for event in batch:
        record = to_record(event)
        per_topic[record.topic] += 1
        outcome = parse_record(record, topic_kinds[record.topic], now, settings.max_future_skew_s)
        if isinstance(outcome, ParsedEvent):
            parsed.append(outcome)
            partition_of_user[outcome.event.user_id] = record.partition
        else:
            dead_letters.append(outcome)
    for topic, count in per_topic.items():  # one counter update per topic, not per event
        EVENTS_IN.labels(topic).inc(count)

    states = user_states.read(partition_of_user)
    result = models.holder.for_next_batch().apply(parsed, states)
    await publish(result, dead_letters, batch)
    await user_states.write(result.states, partition_of_user)


def to_record(event: faust.EventT) -> InputRecord:
    message = event.message
    return InputRecord(message.topic, message.partition, message.offset, message.key, message.value)


async def publish(result: BatchResult, dead_letters: list, batch: list[faust.EventT]) -> None:
    """Send lists and dead letters, and return once Kafka has acknowledged all of them."""
    producer = await kafka_producer(app)
    lists_topic = topics.recommendations.get_topic_name()
    partition_of = await partitioner(producer, lists_topic)
    keys = [user.encode() for user, _ in result.lists]
    lists = [(partition_of(key), key, value) for key, (_, value) in zip(keys, result.lists, strict=True)]
    pending = [batch.future for batch in await send_records(producer, lists_topic, lists)]
    for letter in [*dead_letters, *result.dead_letters]:
        pending.append(await topics.dead_letters.send(key=letter.original_key, value=letter.to_bytes()))
        DEAD_LETTERS.labels(letter.reason).inc()
    await asyncio.gather(*pending)

    acked_at = time.time()
    for event in batch:
        END_TO_END_LATENCY.observe(max(0.0, acked_at - event.message.timestamp))
    LISTS_OUT.inc(len(result.lists))
    DUPLICATES.inc(result.duplicates)
    REENCODED.inc(result.reencoded)
    NEW_SESSIONS.inc(result.new_sessions)
