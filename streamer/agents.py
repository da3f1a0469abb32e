"""The stream processor: click and buy events in, recommendation lists and dead letters out.

Two steps, one after the other (:mod:`streamer.sequencing` says why):

* the router (:mod:`streamer.routing`, a task fed by the consumer a fetch at a time) validates each
  click and buy record: a malformed one becomes a dead letter, a valid one is forwarded unchanged to
  the sequencing topic on its user's partition.
* the agent ``apply_events`` reads the sequencing topic. For each micro-batch: read each user's state once,
  apply the batch with the model, publish lists and dead letters and wait until Kafka has them, and
  only then write the new states. A crash before the state write replays the batch from the old
  states and re-sends identical lists; a crash after it finds the events already applied (per-user
  offsets) and skips them.

Both commit a record's offset only once its batch is done (streamer.offsets); a batch that fails is
read again from its first record.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import faust
from faust.types import TP

from schemas.dead_letters import DeadLetter
from streamer.app import app, settings
from streamer.engine import BatchResult
from streamer.heap import freeze_startup_heap
from streamer.metrics import (
    BATCH_SIZE,
    DUPLICATES,
    END_TO_END_LATENCY,
    LISTS_OUT,
    NEW_SESSIONS,
    REENCODED,
    REPEATED_EVENTS,
)
from streamer.model_swap import ModelFeed
from streamer.producing import kafka_producer, partitioner, send_records
from streamer.records import InputRecord, ParsedEvent
from streamer.routing import Router, send_dead_letters
from streamer.seeking import in_partition_order, read_again
from streamer.sequencing import unframe
from streamer.tables import UserStateTable
from streamer.topics import declare_topics

topics = declare_topics(app, settings)
user_states = UserStateTable(app, settings)
models = ModelFeed(settings)
topic_kinds = settings.topic_kinds()
offset_guard = app.offset_guard
router = app.router = Router(app, settings, offset_guard, topics.dead_letters)
app.topics.add(topics.events)  # subscribed for the router; no stream reads it
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


@app.task
async def route_input() -> None:
    await router.run()


@app.agent(topics.sequenced)
async def apply_events(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_ms / 1000):
        await run_guarded(batch, process_batch)


async def run_guarded(
    batch: list[faust.EventT], handle: Callable[[list[faust.EventT]], Awaitable[None]]
) -> None:
    """Handle the records of ``batch`` that follow their partition's previous one; mark them
    committable once ``handle`` has returned, or read them again if it raised."""
    messages = [event.message for event in batch]
    accepted = await in_partition_order(app, offset_guard, messages)
    if len(accepted) != len(batch):
        batch, messages = [batch[i] for i in accepted], [messages[i] for i in accepted]
    try:
        await handle(batch)
    except Exception:
        await read_again(app, offset_guard, messages)
        raise
    offset_guard.completed(messages)


async def process_batch(batch: list[faust.EventT]) -> None:
    BATCH_SIZE.observe(len(batch))
    now = time.time()
    parsed: list[ParsedEvent] = []
    dead_letters: list[DeadLetter] = []
    partition_of_user: dict[str, int] = {}  # the table partition: that of the user's sequenced events
    for event in batch:
        outcome = unframe(to_record(event), settings.topic_partitions, topic_kinds, now)
        if isinstance(outcome, ParsedEvent):
            parsed.append(outcome)
            partition_of_user[outcome.event.user_id] = event.message.partition
        else:
            dead_letters.append(outcome)

    states = user_states.read(partition_of_user)
    result = models.holder.for_next_batch().apply(parsed, states)
    await publish(result, dead_letters, batch)
    await user_states.write(result.states, partition_of_user)


def to_record(event: faust.EventT) -> InputRecord:
    message = event.message
    return InputRecord(message.topic, message.partition, message.offset, message.key, message.value)


async def publish(result: BatchResult, dead_letters: list[DeadLetter], batch: list[faust.EventT]) -> None:
    """Send lists and dead letters, and return once Kafka has acknowledged all of them."""
    producer = await kafka_producer(app)
    lists_topic = topics.recommendations.get_topic_name()
    partition_of = await partitioner(producer, lists_topic)
    keys = [user.encode() for user, _ in result.lists]
    lists = [(partition_of(key), key, value) for key, (_, value) in zip(keys, result.lists, strict=True)]
    pending = [batch.future for batch in await send_records(producer, lists_topic, lists)]
    pending += await send_dead_letters(topics.dead_letters, [*dead_letters, *result.dead_letters])
    await asyncio.gather(*pending)

    acked_at = time.time()
    for event in batch:
        END_TO_END_LATENCY.observe(max(0.0, acked_at - event.message.timestamp))
    LISTS_OUT.inc(len(result.lists))
    DUPLICATES.inc(result.duplicates)
    REPEATED_EVENTS.inc(result.repeats)
    REENCODED.inc(result.reencoded)
    NEW_SESSIONS.inc(result.new_sessions)
