"""Handling fetched records under the offset guard (:mod:`streamer.worker.offsets`): in partition
order, seeking back over a jump, and reading a batch again from its first record when it fails.
Shared by the router and the agent.

Once the guard has accepted records it expects the ones after them next, so accepted records that
are not completed must be rewound, or the next records would pass and a commit could move past
records nobody handled. :func:`handle_in_order` rewinds on every way out that is not a completed
batch: ``handle`` raising, a seek raising (the partition was revoked while the seek waited for the
consumer thread), or the task being cancelled. A rewind needs no seek to be safe: the next record
above the rewound offset is a jump, and the jump seeks back.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import faust
from faust.types import TP

from streamer.worker.metrics import FETCH_GAPS
from streamer.worker.offsets import OffsetGuard, Positioned, TopicPartition

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Positioned)


async def handle_in_order(
    app: faust.App,
    guard: OffsetGuard,
    records: Sequence[R],
    handle: Callable[[list[R]], Awaitable[object]],
) -> list[R]:
    """Hand ``handle`` the ``records`` that follow their partition's previous one and mark them
    committable once it has returned; where a partition jumped ahead, seek back so the skipped
    records are fetched again. If ``handle`` raises, the accepted records are read again from the
    first one and the error is raised. Returns the records handed to ``handle``."""
    indices, gaps = guard.split(records)
    accepted = [records[i] for i in indices]
    try:
        for (topic, partition), offset in gaps.items():
            log.warning("%s[%d] jumped past offset %d; seeking back to it", topic, partition, offset)
            FETCH_GAPS.inc()
            await _seek(app, guard, (topic, partition), offset)
        if accepted:
            await handle(accepted)
    except Exception:
        await _read_again(app, guard, accepted)
        raise
    except BaseException:  # cancelled: no awaiting here, the next record's jump seeks back
        _rewind(guard, accepted)
        raise
    guard.completed(accepted)
    return accepted


async def _read_again(app: faust.App, guard: OffsetGuard, records: Sequence[Positioned]) -> None:
    """Seek each partition of records that failed back to its first one."""
    for tp, offset in _rewind(guard, records).items():
        await _seek(app, guard, tp, offset)


def _rewind(guard: OffsetGuard, records: Sequence[Positioned]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = (record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    for tp, offset in first.items():
        guard.rewind(tp, offset)
    return first


async def _seek(app: faust.App, guard: OffsetGuard, tp: TopicPartition, offset: int) -> None:
    try:
        await app.consumer.seek(TP(*tp), offset)
    except Exception as error:
        # Revoked meanwhile (its next owner reads it from the commit), or the consumer is between
        # assignments: the guard expects ``offset`` again, so the next record above it seeks again.
        guard.rewind(tp, offset)
        log.warning("%s[%d]: could not seek back to %d (%r)", *tp, offset, error)
