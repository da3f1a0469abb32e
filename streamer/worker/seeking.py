"""Moving the consumer's position for the offset guard (:mod:`streamer.worker.offsets`): back over a jump
in a partition, and back to the first record of a batch that failed. Shared by the router and the
agent."""

import contextlib
import logging
from collections.abc import Sequence

import faust
from faust.types import TP

from streamer.worker.metrics import FETCH_GAPS
from streamer.worker.offsets import OffsetGuard, Positioned

log = logging.getLogger(__name__)


async def in_partition_order(app: faust.App, guard: OffsetGuard, records: Sequence[Positioned]) -> list[int]:
    """Indices of the ``records`` that follow their partition's previous one; where a partition
    jumped ahead, seek back so the skipped records are fetched again."""
    accepted, gaps = guard.split(records)
    for (topic, partition), offset in gaps.items():
        log.warning("%s[%d] jumped past offset %d; seeking back to it", topic, partition, offset)
        FETCH_GAPS.inc()
        await app.consumer.seek(TP(topic, partition), offset)
    return accepted


async def read_again(app: faust.App, guard: OffsetGuard, records: Sequence[Positioned]) -> None:
    """Seek each partition of records that failed back to its first one."""
    first: dict[tuple[str, int], int] = {}
    for record in records:
        tp = (record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    for (topic, partition), offset in first.items():
        guard.rewind((topic, partition), offset)
        with contextlib.suppress(Exception):  # revoked meanwhile: its next owner reads it from the commit
            await app.consumer.seek(TP(topic, partition), offset)
