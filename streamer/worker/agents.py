"""The worker's Faust agents, tasks and signal handlers: click and buy events in, recommendation
lists and dead letters out, in two steps (:mod:`streamer.worker.sequencing` says why):

* the router (:mod:`streamer.worker.routing`, a task fed by the consumer a fetch at a time) validates
  each click and buy record: a malformed one becomes a dead letter, a valid one is forwarded
  unchanged to the sequencing topic on its user's partition.
* the agent ``apply_events`` reads the sequencing topic in micro-batches and hands each to the
  :class:`~streamer.worker.batches.BatchProcessor`.

Both commit a record's offset only once its batch is done (streamer.worker.offsets); a batch that
fails is read again from its first record.
"""

import logging
import time
from collections.abc import Awaitable, Callable

import faust
from faust.types import TP, Message

from streamer.worker.batches import OvertakenByRebalance
from streamer.worker.heap import freeze_startup_heap
from streamer.worker.metrics import END_TO_END_LATENCY
from streamer.worker.offsets import OffsetGuard
from streamer.worker.parts import Worker
from streamer.worker.records import InputRecord
from streamer.worker.seeking import handle_in_order

log = logging.getLogger(__name__)


def register_agents(worker: Worker) -> None:
    app, guard, settings = worker.app, worker.offset_guard, worker.settings

    @app.on_worker_init.connect
    def load_first_model(sender: faust.App, **kwargs: object) -> None:
        # Before the worker joins the group: a missing or bad model stops it here, with the reason.
        # Faust sends this signal twice when started through app.main(); load once.
        if worker.models.holder.version is None:
            worker.catalog.load_initial()  # the whole catalog before serving: no sold-out item listed
            worker.models.load_initial()
            freeze_startup_heap()

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: faust.App, revoked: set[TP], **kwargs: object) -> None:
        guard.forget((tp.topic, tp.partition) for tp in revoked)

    @app.task
    async def follow_model_updates() -> None:
        await worker.models.follow()

    @app.task
    async def follow_catalog() -> None:
        await worker.catalog.follow()

    @app.task
    async def route_input() -> None:
        await worker.router.run()

    @app.agent(worker.topics.sequenced, name="apply_events")
    async def apply_events(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(
            settings.worker.batch_max, within=settings.worker.batch_within_ms / 1000
        ):
            try:
                await run_guarded(app, guard, batch, worker.batches.process)
            except OvertakenByRebalance as moved:  # read again once the rebalance is over
                log.warning("a batch of %d records stored nothing: %s", len(batch), moved)


async def run_guarded(
    app: faust.App,
    guard: OffsetGuard,
    batch: list[faust.EventT],
    handle: Callable[[list[InputRecord], Callable[[], bool]], Awaitable[object]],
) -> None:
    """Handle the records of ``batch`` that follow their partition's previous one; mark them
    committable once ``handle`` has returned, or read them again if it raised.

    ``handle`` also gets a check that no rebalance began since the batch started, to call before it
    stores states. Faust's revocation waits for the batch in flight, but a broker outage can hold
    its lists for longer than the group waits for this worker to rejoin: the partition's next owner
    then restores the states from the changelog and applies the same records again, and a late
    state write from here would land on the changelog after the new owner's."""

    rebalances = app.rebalancing_count

    async def handle_messages(messages: list[Message]) -> None:
        await handle(
            [InputRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in messages],
            lambda: app.rebalancing_count == rebalances,
        )

    messages = await handle_in_order(app, guard, [event.message for event in batch], handle_messages)
    done_at = time.time()
    for message in messages:
        END_TO_END_LATENCY.observe(max(0.0, done_at - message.timestamp))
