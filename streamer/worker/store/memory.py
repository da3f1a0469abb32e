"""User states in a dict, as the bytes the RocksDB store would hold (for tests and tools)."""

from collections.abc import Mapping

from streamer.worker.state import UserState


class MemoryStateStore:
    def __init__(self) -> None:
        self.data: dict[tuple[int, str], bytes] = {}  # (partition, user id) -> UserState.to_bytes()

    def read(self, partition_of_user: Mapping[str, int]) -> dict[str, UserState | None]:
        raws = {user: self.data.get((partition, user)) for user, partition in partition_of_user.items()}
        return {
            user: None if raw is None else UserState.from_bytes(raw, partition_of_user[user])
            for user, raw in raws.items()
        }

    async def write(self, states: Mapping[str, UserState], partition_of_user: Mapping[str, int]) -> None:
        for user, state in states.items():
            self.data[(partition_of_user[user], user)] = state.to_bytes()
