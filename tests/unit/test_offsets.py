from dataclasses import dataclass

from streamer.offsets import OffsetGuard


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


def test_consecutive_offsets_pass_in_every_partition():
    guard = OffsetGuard()
    batch = [Rec("click", 0, 5), Rec("click", 1, 9), Rec("click", 0, 6), Rec("buy", 0, 1)]
    assert guard.split(batch) == ([0, 1, 2, 3], {})
    assert guard.split([Rec("click", 0, 7), Rec("click", 1, 10)]) == ([0, 1], {})


def test_a_jump_holds_back_the_rest_of_that_partition_and_names_the_seek_offset():
    guard = OffsetGuard()
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
    guard.split([Rec("click", 0, 10), Rec("click", 0, 11)])
    assert guard.split([Rec("click", 0, 10), Rec("click", 0, 11), Rec("click", 0, 12)]) == ([0, 1, 2], {})
    assert guard.split([Rec("click", 0, 14)]) == ([], {("click", 0): 13})


def test_a_revoked_partition_starts_over_from_whatever_comes_next():
    guard = OffsetGuard()
    guard.split([Rec("click", 0, 10)])
    guard.forget([("click", 0)])
    assert guard.split([Rec("click", 0, 90)]) == ([0], {})
