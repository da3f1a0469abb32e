"""Where user states live: the :class:`StateStore` seam.

The worker reads the states of a micro-batch's users in one call and writes the changed ones in
another, both keyed by the partition of the users' sequenced events (that partition owns the state).
:class:`~streamer.worker.store.rocksdb.RocksDBStateStore` is the production store (a Faust table in
RocksDB with a changelog); :class:`~streamer.worker.store.memory.MemoryStateStore` keeps the same
bytes in a dict, so the whole batch logic runs in unit tests without a broker.
"""

from collections.abc import Mapping
from typing import Protocol

from streamer.worker.state import UserState


class StateStore(Protocol):
    def read(self, partition_of_user: Mapping[str, int]) -> dict[str, UserState | None]:
        """The stored state of each user (None if there is none or it is unreadable)."""
        ...

    async def write(self, states: Mapping[str, UserState], partition_of_user: Mapping[str, int]) -> None:
        """Store ``states``; raise if an earlier write failed for good."""
        ...
