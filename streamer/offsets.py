"""Guarding input partitions against skipped offsets.

When a rebalance interrupts a fetch, Faust can drop records it has already fetched: the consumer's
position has moved past them, so they never reach the agent. Applying the events that follow would
apply users' events out of order, and the per-user applied offsets would then refuse the missing
ones when they came back. The guard notices the jump before anything is applied: it holds back the
partition's events from the jump on and names the offset to seek back to. Faust commits only
contiguous acknowledged offsets, so the held-back events are fetched again after the seek.
"""

from collections.abc import Iterable, Sequence
from typing import Protocol


class Positioned(Protocol):
    topic: str
    partition: int
    offset: int


class OffsetGuard:
    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def split(self, records: Sequence[Positioned]) -> tuple[list[int], dict[tuple[str, int], int]]:
        """(indices of the records to apply, {(topic, partition): offset to seek back to}).

        Records below the expected offset are redeliveries and pass: the per-user applied offsets
        skip whatever was applied already.
        """
        accepted: list[int] = []
        gaps: dict[tuple[str, int], int] = {}
        for index, record in enumerate(records):
            tp = (record.topic, record.partition)
            expected = self._next.get(tp)
            if tp in gaps:
                continue
            if expected is not None and record.offset > expected:
                gaps[tp] = expected
                continue
            accepted.append(index)
            self._next[tp] = max(record.offset + 1, expected or 0)
        return accepted, gaps

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked: whoever owns them next continues from the committed offset."""
        for tp in partitions:
            self._next.pop(tp, None)
