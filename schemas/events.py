"""Click and buy events: what producers send to the ``click`` and ``buy`` topics.

Wire format (JSON object, UTF-8)::

    {"event_id": "e-1", "user_id": "u-42", "item_id": "214536502",
     "event_time": 1396860669.277, "session_id": "s-7", "event_type": "click"}

``event_time`` is unix seconds. ``session_id`` is optional. ``event_type`` is optional: the topic
decides it (see :data:`TOPIC_EVENT_TYPES`); if given it must be one the topic accepts. Messages
should be keyed by ``user_id`` so that all of a user's events share a partition.
"""

import math
import time
from dataclasses import asdict, dataclass
from enum import IntEnum

from schemas._json import decode_object, encode, optional_str, required_number, required_str
from schemas.errors import InvalidMessage

MAX_EVENT_BYTES = 4096
# Events older than this are certainly a unit mistake (milliseconds sent as seconds look like the
# far future; zero or negative values are missing data).
EARLIEST_EVENT_TIME = 946684800.0  # 2000-01-01T00:00:00Z
DEFAULT_MAX_FUTURE_SKEW_S = 3600.0


class EventType(IntEnum):
    """Event kinds. The integer is the model's event-type index: keep values stable."""

    CLICK = 0
    BUY = 1
    CART = 2


EVENT_TYPES: dict[str, EventType] = {t.name.lower(): t for t in EventType}

# Which event types each input topic carries; the first one is the default when a message omits it.
TOPIC_EVENT_TYPES: dict[str, tuple[EventType, ...]] = {
    "click": (EventType.CLICK, EventType.CART),
    "buy": (EventType.BUY,),
}


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    item_id: str
    event_time: float
    event_type: EventType = EventType.CLICK
    session_id: str | None = None

    def to_bytes(self) -> bytes:
        obj = asdict(self)
        obj["event_type"] = self.event_type.name.lower()
        if self.session_id is None:
            del obj["session_id"]
        return encode(obj)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        topic_kind: str | None = "click",
        now: float | None = None,
        max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    ) -> "Event":
        """Parse and validate one event read from the topic of kind ``topic_kind`` (None: any kind).

        Raises :class:`InvalidMessage` whose ``reason`` is one of ``oversized``, ``malformed_json``,
        ``missing_field``, ``wrong_type``, ``unknown_event_type``, ``absurd_timestamp``.
        """
        obj = decode_object(data, MAX_EVENT_BYTES)
        event_time = required_number(obj, "event_time")
        latest = (time.time() if now is None else now) + max_future_skew_s
        if not EARLIEST_EVENT_TIME <= event_time <= latest:
            raise InvalidMessage(
                "absurd_timestamp",
                f"event_time {event_time} is outside [{EARLIEST_EVENT_TIME}, now + {max_future_skew_s}s]"
                " (unix seconds expected)",
            )
        return cls(
            event_id=required_str(obj, "event_id"),
            user_id=required_str(obj, "user_id"),
            item_id=required_str(obj, "item_id"),
            event_time=event_time,
            event_type=_event_type(obj, topic_kind),
            session_id=optional_str(obj, "session_id"),
        )

    @classmethod
    def from_stored(cls, data: bytes) -> "Event":
        """Read an event this project wrote itself (``to_bytes``), whatever topic it came from."""
        return cls.from_bytes(data, topic_kind=None, max_future_skew_s=math.inf)


def _event_type(obj: dict, topic_kind: str | None) -> EventType:
    accepted = tuple(EventType) if topic_kind is None else TOPIC_EVENT_TYPES[topic_kind]
    name = obj.get("event_type")
    if name is None:
        return accepted[0]
    event_type = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if event_type not in accepted:
        allowed = ", ".join(t.name.lower() for t in accepted)
        raise InvalidMessage(
            "unknown_event_type", f"event_type {name!r} is not accepted on the {topic_kind} topic ({allowed})"
        )
    return event_type
