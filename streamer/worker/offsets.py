"""Which input offsets may be applied, and which may be committed.

Three rules keep every event applied once and in order:

* **Apply in partition order.** When a rebalance interrupts a fetch, Faust can drop records it has
  already fetched: the consumer's position has moved past them, so they never reach the agent.
  The guard notices the jump before anything is applied, holds back that partition's records from
  the jump on, and names the offset to seek back to. A jump can also be real: transaction markers
  and compaction leave offsets without records. After a seek-back, the first record that arrives at
  or below the offset that caused the jump settles it (the re-read came back); records above it are
  the rest of the stale fetch and are held back silently, so one jump costs one seek and one line.
* **Start from the committed offset, never from the first record seen.** Around a rebalance the
  first record of a partition can lie far past its committed offset: Faust's consumer thread goes
  on with a fetch call whose delivery the rebalance cancelled, and consumes records nobody gets.
  (The chaos drill saw partitions' newest records arrive first and the rest as a re-read; earlier
  records then reached the sequencing topic after a later one of the same user, which had marked
  them applied, and got no list.) So a partition accepts nothing between its revocation and
  :meth:`OffsetGuard.start`, which the consumer calls with the committed offset before it seeks
  there: whatever was held back meanwhile was fetched before that seek, which delivers it again.
* **Commit only what is done.** Faust commits the highest contiguous *acknowledged* offset, and its
  ``take_events`` acknowledges every record of a batch when the batch ends, also records the guard
  held back and those of a batch that raised; its gap bookkeeping even counts dropped records as
  done. Here a partition's commit offset moves only when the agent reports a batch's accepted
  records as completed (applied, forwarded or dead-lettered, and acknowledged by Kafka), and the
  accepted records of a partition are contiguous from the last commit by construction.
"""

from collections.abc import Iterable, Sequence
from typing import Protocol

TopicPartition = tuple[str, int]


class Positioned(Protocol):
    topic: str
    partition: int
    offset: int


class OffsetGuard:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}  # the offset each partition must deliver next
        self._seeking: dict[TopicPartition, int] = {}  # partition -> the offset whose jump was sought back
        self._done: dict[TopicPartition, int] = {}  # partition -> offset after its last completed record

    def start(self, tp: TopicPartition, offset: int) -> None:
        """The partition was (re)assigned and will be read from ``offset``, its committed offset (its
        first offset if none was committed)."""
        self._seeking.pop(tp, None)
        self._done.pop(tp, None)
        self._next[tp] = offset

    def split(self, records: Sequence[Positioned]) -> tuple[list[int], dict[TopicPartition, int]]:
        """(indices of the records to apply, {(topic, partition): offset to seek back to}).

        Records below the expected offset are redeliveries and pass: the per-user applied offsets
        skip whatever was applied already. Records of a partition not started since its assignment
        are held back: the seek to its committed offset delivers them again.
        """
        accepted: list[int] = []
        seeks: dict[TopicPartition, int] = {}
        jumped_now: set[TopicPartition] = set()  # the rest of this batch is the fetch that jumped
        for index, record in enumerate(records):
            tp = (record.topic, record.partition)
            if tp in jumped_now:
                continue
            expected = self._next.get(tp)
            if expected is None:
                continue
            if record.offset > expected:
                jumped_at = self._seeking.get(tp)
                if jumped_at is None:
                    self._seeking[tp] = record.offset
                    seeks[tp] = expected
                    jumped_now.add(tp)
                    continue
                if record.offset > jumped_at:  # the stale rest of an earlier jump; the re-read follows
                    continue
                # Re-read after the seek and still above: no records at offsets expected..offset-1.
            self._seeking.pop(tp, None)
            accepted.append(index)
            self._next[tp] = max(record.offset + 1, expected)
        return accepted, seeks

    def rewind(self, tp: TopicPartition, offset: int) -> None:
        """The records from ``offset`` on failed: ``tp`` is read again from there (a partition revoked
        meanwhile stays unstarted)."""
        if tp in self._next:
            self._next[tp] = offset
        self._seeking.pop(tp, None)

    def completed(self, records: Iterable[Positioned]) -> None:
        """These accepted records are done: their partitions may be committed past them."""
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset >= self._done.get(tp, -1):
                self._done[tp] = record.offset + 1

    def committable(self, tp: TopicPartition) -> int | None:
        """The offset to commit for ``tp``: every record below it is done (None: nothing new)."""
        return self._done.get(tp)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: whoever owns them next continues from the committed offset, and so
        does this worker if they come back (nothing passes until :meth:`start`)."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._seeking.pop(tp, None)
            self._done.pop(tp, None)
