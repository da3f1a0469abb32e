"""One micro-batch of sequenced records, start to end: unframe and parse, read the users' states,
apply the events with the serving model, publish lists and dead letters and wait until they are
durable, and only then write the new states.

A crash before the state write replays the batch from the old states and re-sends identical lists;
a crash after it finds the events already applied (per-user offsets) and skips them. A batch that a
rebalance overtook before the state write stores nothing (:func:`streamer.worker.agents.run_guarded`).
The state store, the model holder and the outbox are handed in (:mod:`streamer.worker.assembly`), so
the whole batch runs in unit tests on the in-memory store with a fake outbox.
"""

import time
from collections.abc import Callable

from schemas.dead_letters import DeadLetter
from streamer.common.settings import Settings
from streamer.worker.engine import BatchResult
from streamer.worker.metrics import (
    BATCH_SIZE,
    DUPLICATES,
    LISTS_BY_BASIS,
    LISTS_OUT,
    NEW_SESSIONS,
    REENCODED,
    REPEATED_EVENTS,
    UNKNOWN_ITEMS,
)
from streamer.worker.model_feed import ModelHolder
from streamer.worker.outbox import Outbox
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.sequencing import unframe
from streamer.worker.store import StateStore


class OvertakenByRebalance(Exception):
    """A rebalance began before a batch's states were stored."""


class BatchProcessor:
    def __init__(self, settings: Settings, states: StateStore, models: ModelHolder, outbox: Outbox) -> None:
        self.states = states
        self.models = models
        self.outbox = outbox
        self._partitions = settings.topics.partitions
        self._topic_kinds = settings.topic_kinds()

    async def process(
        self, records: list[InputRecord], no_rebalance_since: Callable[[], bool] = lambda: True
    ) -> BatchResult:
        """Process ``records`` (read from the sequencing topic, in partition order) and return what
        was published and stored. Raises :class:`OvertakenByRebalance`, storing nothing, if
        ``no_rebalance_since()`` is false once the lists are out: the partitions may have moved."""
        BATCH_SIZE.observe(len(records))
        now = time.time()
        parsed: list[ParsedEvent] = []
        dead_letters: list[DeadLetter] = []
        partition_of_user: dict[str, int] = {}  # the state's partition: that of the user's sequenced events
        for record in records:
            outcome = unframe(record, self._partitions, self._topic_kinds, now)
            if isinstance(outcome, ParsedEvent):
                parsed.append(outcome)
                partition_of_user[outcome.event.user_id] = record.partition
            else:
                dead_letters.append(outcome)

        states = self.states.read(partition_of_user)
        result = self.models.for_next_batch().apply(parsed, states)
        result.dead_letters = dead_letters
        await self.outbox.publish(result.lists, result.dead_letters)
        if not no_rebalance_since():
            raise OvertakenByRebalance("a rebalance began while its lists were sent; it is read again")
        await self.states.write(result.states, partition_of_user)
        _count(result)
        return result


def _count(result: BatchResult) -> None:
    LISTS_OUT.inc(len(result.lists))
    DUPLICATES.inc(result.duplicates)
    REPEATED_EVENTS.inc(result.repeats)
    REENCODED.inc(result.reencoded)
    NEW_SESSIONS.inc(result.new_sessions)
    UNKNOWN_ITEMS.inc(result.unknown_items)
    LISTS_BY_BASIS.labels("popularity").inc(result.popularity_lists)
    LISTS_BY_BASIS.labels("model").inc(len(result.lists) - result.popularity_lists)
    result.outcomes.publish()
