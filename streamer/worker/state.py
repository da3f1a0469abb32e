"""One user's state as the streamer keeps it in the table, and its compact byte encoding.

Layout: ``b"S1"`` | u32 length of a JSON header | JSON header | float32 hidden state (C order).
The header holds the small fields; the hidden state stays raw bytes so it round-trips exactly.
"""

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"S1"
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
        header = json.dumps(
            {
                "v": self.model_version,
                "shape": list(self.hidden.shape),
                "items": self.recent_items,
                "types": self.recent_types,
                "t": self.last_event_time,
                "s": self.session_id,
                "applied": self.applied,
                "n": self.events_seen,
                "e": base64.b64encode(self.recent_events).decode(),
            },
            separators=(",", ":"),
        ).encode()
        hidden = np.ascontiguousarray(self.hidden, dtype=np.float32).tobytes()
        return MAGIC + _HEADER_LEN.pack(len(header)) + header + hidden

    @classmethod
    def from_bytes(cls, data: bytes, partition: int | None = None) -> "UserState":
        """Decode a stored state. States written before input partitions were told apart keyed
        ``applied`` by topic alone (all of a user's events shared the state's ``partition``)."""
        if data[:2] != MAGIC:
            raise StateDecodeError(f"unknown state format {data[:2]!r}")
        start = 2 + _HEADER_LEN.size
        try:
            (length,) = _HEADER_LEN.unpack_from(data, 2)
            header = json.loads(data[start : start + length])
            hidden = np.frombuffer(data[start + length :], dtype=np.float32).reshape(header["shape"])
            return cls(
                hidden=hidden.copy(),
                model_version=header["v"],
                recent_items=header["items"],
                recent_types=header["types"],
                last_event_time=header["t"],
                session_id=header["s"],
                applied={
                    key if "/" in key or partition is None else f"{key}/{partition}": offset
                    for key, offset in header["applied"].items()
                },
                events_seen=header["n"],
                recent_events=base64.b64decode(header.get("e", ""), validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
            raise StateDecodeError(f"corrupt user state: {exc}") from None


def _event_digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=EVENT_DIGEST_BYTES).digest()
