"""The user-state table: user id -> :class:`streamer.state.UserState`, in RocksDB with a changelog.

Faust routes a table read or write to the RocksDB partition and changelog partition of the *current
event*. A micro-batch mixes partitions, so every access goes through :class:`UserStateTable`, which
makes the event of that user current for the duration of the access.
"""

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event  # the context variable behind faust.current_event()

from streamer.settings import Settings
from streamer.state import StateDecodeError, UserState

log = logging.getLogger(__name__)


@contextmanager
def as_current_event(event: faust.EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class UserStateTable:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.table = app.Table(
            "user-state",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            options={
                "driver": "rocksdict",
                "block_cache_size": settings.rocksdb_block_cache_mb << 20,
                "write_buffer_size": settings.rocksdb_write_buffer_mb << 20,
            },
            help="GRU hidden state, recent items and applied offsets per user",
        )
        self.corrupt_states = 0

    def get(self, user_id: str, event: faust.EventT) -> UserState | None:
        with as_current_event(event):
            raw = self.table.get(user_id.encode())
        if raw is None:
            return None
        try:
            return UserState.from_bytes(raw)
        except StateDecodeError as exc:
            self.corrupt_states += 1
            log.error("user %r: stored state unreadable (%s); starting from zero", user_id, exc)
            return None

    def put(self, user_id: str, state: UserState, event: faust.EventT) -> None:
        with as_current_event(event):
            self.table[user_id.encode()] = state.to_bytes()
