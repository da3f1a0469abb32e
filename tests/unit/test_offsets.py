from dataclasses import dataclass

from streamer.worker.offsets import OffsetGuard


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


def test_consecutive_offsets_pass_in_every_partition():
    guard = OffsetGuard()
    for tp, offset in {("click", 0): 5, ("click", 1): 9, ("buy", 0): 1}.items():
        guard.start(tp, offset)
    batch = [Rec("click", 0, 5), Rec("click", 1, 9), Rec("click", 0, 6), Rec("buy", 0, 1)]
    assert guard.split(batch) == ([0, 1, 2, 3], {})
    assert guard.split([Rec("click", 0, 7), Rec("click", 1, 10)]) == ([0, 1], {})


def test_a_jump_holds_back_the_rest_of_that_partition_and_names_the_seek_offset():
    guard = OffsetGuard()
    guard.start(("click", 0), 40)
    guard.start(("click", 1), 3)
    guard.split([Rec("click", 0, 40), Rec("click", 1, 3)])
    accepted, gaps = guard.split(
        [Rec("click", 1, 4), Rec("click", 0, 54), Rec("click", 0, 55), Rec("click", 1, 5)]
    )
    assert accepted == [0, 3]
    assert gaps == {("click", 0): 41}
    # After the seek the missing events arrive, and the stream goes on from there.
    assert guard.split([Rec("click", 0, 41), Rec("click", 0, 42)]) == ([0, 1], {})


def test_redeliveries_below_the_expected_offset_pass_without_moving_it_back():
    guard = OffsetGuard()
    guard.start(("click", 0), 10)
    guard.split([Rec("click", 0, 10), Rec("click", 0, 11)])
    assert guard.split([Rec("click", 0, 10), Rec("click", 0, 11), Rec("click", 0, 12)]) == ([0, 1, 2], {})
    assert guard.split([Rec("click", 0, 14)]) == ([], {("click", 0): 13})


def test_a_partition_never_started_accepts_nothing():
    guard = OffsetGuard()
    assert guard.split([Rec("click", 0, 0), Rec("click", 0, 1)]) == ([], {})
    guard.start(("click", 0), 0)
    assert guard.split([Rec("click", 0, 0), Rec("click", 0, 1)]) == ([0, 1], {})


def test_after_a_rebalance_a_partition_continues_from_its_committed_offset_not_from_the_first_record():
    # The chaos drill: the consumer thread consumed a newly assigned partition's first fetch for a
    # cancelled delivery, so its newest record arrived first and the rest came as a re-read.
    guard = OffsetGuard()
    guard.start(("click", 2), 2100)
    guard.split([Rec("click", 2, 2100)])
    guard.forget([("click", 2)])
    guard.rewind(("click", 2), 2100)  # a batch routed before the revocation failed afterwards
    assert guard.split([Rec("click", 2, 2434)]) == ([], {})  # held back until the partition restarts
    guard.start(("click", 2), 2181)
    assert guard.split([Rec("click", 2, 2434)]) == ([], {("click", 2): 2181})
    assert guard.split([Rec("click", 2, 2181), Rec("click", 2, 2182)]) == ([0, 1], {})
    assert guard.committable(("click", 2)) is None  # nothing done yet in this assignment


def test_after_a_seek_back_the_rest_of_the_stale_fetch_is_held_without_another_seek():
    guard = OffsetGuard()
    guard.start(("click", 0), 10)
    assert guard.split([Rec("click", 0, 15), Rec("click", 0, 16)]) == ([], {("click", 0): 10})
    assert guard.split([Rec("click", 0, 17), Rec("click", 0, 18)]) == ([], {})
    assert guard.split([Rec("click", 0, 10), Rec("click", 0, 11)]) == ([0, 1], {})


def test_a_real_gap_such_as_a_transaction_marker_is_accepted_after_one_seek_back():
    guard = OffsetGuard()
    guard.start(("click", 0), 10)
    assert guard.split([Rec("click", 0, 12)]) == ([], {("click", 0): 10})
    # The re-read starts at 12 again: offsets 10 and 11 hold no records.
    assert guard.split([Rec("click", 0, 12), Rec("click", 0, 13)]) == ([0, 1], {})
    assert guard.split([Rec("click", 0, 15)]) == ([], {("click", 0): 14})


def test_only_completed_records_become_committable():
    guard = OffsetGuard()
    guard.start(("click", 0), 10)
    accepted, _ = guard.split([Rec("click", 0, 10), Rec("click", 0, 11), Rec("click", 0, 14)])
    assert accepted == [0, 1] and guard.committable(("click", 0)) is None
    guard.completed([Rec("click", 0, 10), Rec("click", 0, 11)])
    assert guard.committable(("click", 0)) == 12  # never past the held-back 12 and 13


def test_a_failed_batch_is_read_again_and_never_committed():
    guard = OffsetGuard()
    guard.start(("click", 0), 0)
    guard.split([Rec("click", 0, 0), Rec("click", 0, 1)])
    guard.completed([Rec("click", 0, 0), Rec("click", 0, 1)])
    guard.split([Rec("click", 0, 2), Rec("click", 0, 3)])
    guard.rewind(("click", 0), 2)  # the batch raised
    assert guard.split([Rec("click", 0, 4)]) == ([], {("click", 0): 2})
    assert guard.split([Rec("click", 0, 2)]) == ([0], {})
    assert guard.committable(("click", 0)) == 2


def test_the_consumer_commits_what_the_guard_says_not_what_faust_acknowledged():
    from types import SimpleNamespace

    from faust.types import TP

    from streamer.worker.consumer import FetchDeliveringConsumer

    guard = OffsetGuard()
    guard.start(("click", 0), 10)
    tp = TP("click", 0)
    # Faust's take_events acknowledged 11-13 although 10 was never applied; Faust would commit 14.
    consumer = SimpleNamespace(app=SimpleNamespace(offset_guard=guard), _acked={tp: [11, 12, 13]})
    consumer._acked_index = {tp: {11, 12, 13}}
    new_offset = FetchDeliveringConsumer._new_offset
    assert new_offset(consumer, tp) is None
    guard.split([Rec("click", 0, 10), Rec("click", 0, 11)])
    guard.completed([Rec("click", 0, 10), Rec("click", 0, 11)])
    assert new_offset(consumer, tp) == 12


def test_a_re_read_that_follows_stale_records_in_the_same_batch_is_accepted():
    guard = OffsetGuard()
    guard.start(("click", 2), 7)
    assert guard.split([Rec("click", 2, 8), Rec("click", 2, 9)]) == ([], {("click", 2): 7})
    # Stale records of the fetch that jumped, then the re-read: 7 is a transaction marker.
    batch = [
        Rec("click", 2, 9),
        Rec("click", 2, 10),
        Rec("click", 2, 8),
        Rec("click", 2, 9),
        Rec("click", 2, 10),
    ]
    assert guard.split(batch) == ([2, 3, 4], {})
    assert guard.split([Rec("click", 2, 11)]) == ([0], {})


def test_the_guard_knows_where_each_partition_continues_before_the_consumer_seeks_there():
    import asyncio
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.types import TP

    from streamer.worker.consumer import FetchDeliveringConsumer

    guard = OffsetGuard()
    at_the_seek: list[tuple[list[int], dict]] = []

    class ConsumerThread:
        async def committed_offsets(self) -> dict[TP, int | None]:
            return {TP("click", 0): 40, TP("click", 1): None}

        async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
            assert partitions == (TP("click", 1),)
            return {TP("click", 1): 7}

        async def seek_to_committed(self) -> dict[TP, int | None]:
            # Records fetched before the seek, newer than the committed offsets, reach the guard now.
            at_the_seek.append(guard.split([Rec("click", 0, 55), Rec("click", 1, 9)]))
            return {TP("click", 0): 40, TP("click", 1): None}

    consumer = FetchDeliveringConsumer.__new__(FetchDeliveringConsumer)
    consumer.app = SimpleNamespace(offset_guard=guard)
    consumer._thread = ConsumerThread()
    consumer._read_offset = {}
    consumer._committed_offset = defaultdict(lambda: None)
    asyncio.run(consumer.perform_seek())
    assert at_the_seek == [([], {("click", 0): 40, ("click", 1): 7})]
