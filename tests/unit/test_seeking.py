"""handle_in_order: what the router and the agent do with a fetch or a micro-batch, when a seek, the
handling or the task itself fails. The consumer is a stand-in that records seeks (and can refuse
them, as aiokafka does for a partition revoked while the seek waited)."""

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from streamer.worker.offsets import OffsetGuard
from streamer.worker.seeking import handle_in_order


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


@dataclass
class Consumer:
    refuse: set[tuple[str, int]] = field(default_factory=set)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        if (tp[0], tp[1]) in self.refuse:
            raise RuntimeError(f"No current assignment for partition {tp}")
        self.seeks.append((tp[0], tp[1], offset))


class Handler:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.handled: list[tuple[str, int, int]] = []

    async def __call__(self, records: list[Rec]) -> None:
        if self.error is not None:
            raise self.error
        self.handled += [(r.topic, r.partition, r.offset) for r in records]


def started_guard(**offsets: int) -> OffsetGuard:
    guard = OffsetGuard()
    for name, offset in offsets.items():
        guard.start((name, 0), offset)
    return guard


def run(guard: OffsetGuard, consumer: Consumer, records: list[Rec], handler: Handler) -> list[Rec]:
    return asyncio.run(handle_in_order(SimpleNamespace(consumer=consumer), guard, records, handler))


def test_records_in_order_are_handled_and_become_committable():
    guard, handler = started_guard(a=5), Handler()
    run(guard, Consumer(), [Rec("a", 0, 5), Rec("a", 0, 6)], handler)
    assert handler.handled == [("a", 0, 5), ("a", 0, 6)]
    assert guard.committable(("a", 0)) == 7


def test_a_refused_seek_does_not_cost_the_other_partitions_their_records():
    guard, handler = started_guard(a=5, b=10), Handler()
    consumer = Consumer(refuse={("b", 0)})
    run(guard, consumer, [Rec("a", 0, 5), Rec("b", 0, 30), Rec("a", 0, 6)], handler)
    assert handler.handled == [("a", 0, 5), ("a", 0, 6)]
    assert guard.committable(("a", 0)) == 7
    assert guard.committable(("b", 0)) is None


def test_a_partition_whose_seek_was_refused_seeks_again_on_its_next_record():
    guard, consumer = started_guard(b=10), Consumer(refuse={("b", 0)})
    run(guard, consumer, [Rec("b", 0, 30)], Handler())
    consumer.refuse.clear()
    run(guard, consumer, [Rec("b", 0, 31)], Handler())
    assert consumer.seeks == [("b", 0, 10)]


def test_a_batch_that_raised_is_read_again_from_its_first_record_and_not_committed():
    guard, consumer = started_guard(a=5), Consumer()
    with pytest.raises(ValueError):
        run(guard, consumer, [Rec("a", 0, 5), Rec("a", 0, 6)], Handler(ValueError("broker down")))
    assert consumer.seeks == [("a", 0, 5)]
    assert guard.committable(("a", 0)) is None
    handler = Handler()
    run(guard, consumer, [Rec("a", 0, 5), Rec("a", 0, 6)], handler)
    assert handler.handled == [("a", 0, 5), ("a", 0, 6)]


def test_a_cancelled_batch_is_not_committed_and_the_records_after_it_seek_back_to_it():
    guard, consumer = started_guard(a=5), Consumer()
    with pytest.raises(asyncio.CancelledError):
        run(guard, consumer, [Rec("a", 0, 5), Rec("a", 0, 6)], Handler(asyncio.CancelledError()))
    assert guard.committable(("a", 0)) is None
    handler = Handler()
    run(guard, consumer, [Rec("a", 0, 7)], handler)
    assert handler.handled == []
    assert consumer.seeks == [("a", 0, 5)]
