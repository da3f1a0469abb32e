"""One user's state as the streamer keeps it in the table. Its bytes are
:mod:`schemas.user_states` (a version byte, then MessagePack, the hidden state as raw float32 so it
round-trips exactly); states in the older JSON-header layout are still read.
"""

import base64
import hashlib
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from schemas.errors import InvalidMessage
from schemas.user_states import StoredUserState, decode_user_state, encode_user_state

LEGACY_MAGIC = b"S1"
_HEADER_LEN = struct.Struct("<I")
EVENT_DIGEST_BYTES = 8  # per remembered event id: a false repeat needs a 64-bit collision within one user


class StateDecodeError(ValueError):
    """Stored bytes are not a user state this code can read."""


@dataclass
class UserState:
    hidden: np.ndarray  # float32 [n_layers, hidden]
    model_version: str
    # The current session's items (external ids) and event types, oldest first, bounded; used to
    # re-encode the hidden state when the model changes.
    recent_items: list[str] = field(default_factory=list)
    recent_types: list[int] = field(default_factory=list)
    last_event_time: float = 0.0
    session_id: str | None = None
    # Highest offset applied per input partition ("topic/partition"): every input partition reaches
    # the user in its own order (streamer.worker.sequencing), so anything at or below was applied already.
    applied: dict[str, int] = field(default_factory=dict)
    events_seen: int = 0
    # Digests of the user's most recent event ids, newest last: an event sent twice is applied once.
    recent_events: bytes = b""
    # Items the user bought (and when, event time), oldest first, bounded: a policy may leave them out.
    bought: list[str] = field(default_factory=list)
    bought_at: list[float] = field(default_factory=list)
    # The last list a model served this user, and that model's version: the next event tells whether
    # the list held its item (live quality metrics).
    last_list: list[str] = field(default_factory=list)
    last_list_version: str = ""

    def already_applied(self, topic: str, partition: int, offset: int) -> bool:
        return offset <= self.applied.get(f"{topic}/{partition}", -1)

    def mark_applied(self, topic: str, partition: int, offset: int) -> None:
        self.applied[f"{topic}/{partition}"] = offset

    def seen_event(self, event_id: str) -> bool:
        digest, recent = _event_digest(event_id), self.recent_events
        return any(
            recent[i : i + EVENT_DIGEST_BYTES] == digest for i in range(0, len(recent), EVENT_DIGEST_BYTES)
        )

    def remember_event(self, event_id: str, keep: int) -> None:
        self.recent_events = (self.recent_events + _event_digest(event_id))[-keep * EVENT_DIGEST_BYTES :]

    def to_bytes(self) -> bytes:
        return encode_user_state(
            StoredUserState(
                self.model_version,
                self.hidden.shape,
                np.ascontiguousarray(self.hidden, dtype=np.float32).tobytes(),
                self.recent_items,
                self.recent_types,
                self.last_event_time,
                self.session_id,
                self.applied,
                self.events_seen,
                self.recent_events,
                self.bought,
                self.bought_at,
                self.last_list,
                self.last_list_version,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, partition: int | None = None) -> "UserState":
        """Decode a stored state, in the current layout or the JSON-header one written before it.
        States written before input partitions were told apart keyed ``applied`` by topic alone (all
        of a user's events shared the state's ``partition``)."""
        stored = _decode_json_header_layout(data) if data[:2] == LEGACY_MAGIC else _decode(data)
        return cls(
            hidden=np.frombuffer(stored.hidden, dtype=np.float32).reshape(stored.hidden_shape).copy(),
            model_version=stored.model_version,
            recent_items=stored.recent_items,
            recent_types=stored.recent_types,
            last_event_time=stored.last_event_time,
            session_id=stored.session_id,
            applied={
                key if "/" in key or partition is None else f"{key}/{partition}": offset
                for key, offset in stored.applied.items()
            },
            events_seen=stored.events_seen,
            recent_events=stored.recent_events,
            bought=stored.bought,
            bought_at=stored.bought_at,
            last_list=stored.last_list,
            last_list_version=stored.last_list_version,
        )


def _decode(data: bytes) -> StoredUserState:
    try:
        return decode_user_state(data)
    except InvalidMessage as exc:
        raise StateDecodeError(f"{exc.reason}: {exc.detail}") from None


def _decode_json_header_layout(data: bytes) -> StoredUserState:
    """The layout written until the state moved to MessagePack (read-only, for states stored before
    an upgrade): ``b"S1"`` | u32 length of a JSON header | JSON header | float32 hidden state."""
    start = 2 + _HEADER_LEN.size
    try:
        (length,) = _HEADER_LEN.unpack_from(data, 2)
        header = json.loads(data[start : start + length])
        shape = tuple(header["shape"])
        hidden = data[start + length :]
        if len(hidden) != 4 * math.prod(shape):
            raise ValueError(f"{len(hidden)} bytes of hidden state for shape {shape}")
        return StoredUserState(
            model_version=header["v"],
            hidden_shape=shape,
            hidden=hidden,
            recent_items=header["items"],
            recent_types=header["types"],
            last_event_time=header["t"],
            session_id=header["s"],
            applied=header["applied"],
            events_seen=header["n"],
            recent_events=base64.b64decode(header.get("e", ""), validate=True),
        )
    except (ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
        raise StateDecodeError(f"corrupt user state: {exc}") from None


def _event_digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=EVENT_DIGEST_BYTES).digest()
