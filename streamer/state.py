"""One user's state as the streamer keeps it in the table, and its compact byte encoding.

Layout: ``b"S1"`` | u32 length of a JSON header | JSON header | float32 hidden state (C order).
The header holds the small fields; the hidden state stays raw bytes so it round-trips exactly.
"""

import json
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"S1"
_HEADER_LEN = struct.Struct("<I")


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
    # Highest offset applied per source topic. A user's events all share one partition number, so
    # (topic, offset) identifies each event; anything at or below this was applied already.
    applied: dict[str, int] = field(default_factory=dict)
    events_seen: int = 0

    def already_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

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
            },
            separators=(",", ":"),
        ).encode()
        hidden = np.ascontiguousarray(self.hidden, dtype=np.float32).tobytes()
        return MAGIC + _HEADER_LEN.pack(len(header)) + header + hidden

    @classmethod
    def from_bytes(cls, data: bytes) -> "UserState":
        if data[:2] != MAGIC:
            raise StateDecodeError(f"unknown state format {data[:2]!r}")
        (length,) = _HEADER_LEN.unpack_from(data, 2)
        start = 2 + _HEADER_LEN.size
        try:
            header = json.loads(data[start : start + length])
            hidden = np.frombuffer(data[start + length :], dtype=np.float32).reshape(header["shape"])
        except (ValueError, KeyError) as exc:
            raise StateDecodeError(f"corrupt user state: {exc}") from None
        return cls(
            hidden=hidden.copy(),
            model_version=header["v"],
            recent_items=header["items"],
            recent_types=header["types"],
            last_event_time=header["t"],
            session_id=header["s"],
            applied=header["applied"],
            events_seen=header["n"],
        )
