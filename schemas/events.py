"""Click and buy events: what producers send to the ``click`` and ``buy`` topics.

Wire format (JSON object, UTF-8)::

    {"event_id": "e-1", "user_id": "u-42", "item_id": "214536502",
     "event_time": 1396860669.277, "session_id": "s-7", "event_type": "click"}

:class:`EventMessage` is the contract (msgspec checks it while decoding; ``schemas/json/`` publishes
it); :class:`Event` is what the rest of the code sees. ``event_time`` is unix seconds. Ids may also
be non-negative integers, read as their decimal string. ``session_id`` is optional. ``event_type``
is optional: the topic decides it (see :data:`TOPIC_EVENT_TYPES`); if given it must be one the topic
accepts. Messages should be keyed by ``user_id`` so that all of a user's events share a partition.
"""

import math
import time
from enum import IntEnum
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.codec import decode, encode
from schemas.errors import InvalidMessage
from schemas.fields import ExternalId
from schemas.reasons import Problem

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

EventTypeName = Literal[tuple(EVENT_TYPES)]  # "click", "buy", "cart"


class EventMessage(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A message on the click or buy topic, keyed by user_id. event_type may be omitted: the topic
    decides it (click topic: click or cart; buy topic: buy). event_time is unix seconds; events
    before 2000-01-01 or too far in the future are rejected by the streamer. Ids are strings or
    non-negative integers; an integer is read as its decimal string."""

    event_id: Annotated[ExternalId, Meta(description="unique id, for de-duplication")]
    user_id: ExternalId
    item_id: ExternalId
    event_time: Annotated[float, Meta(ge=EARLIEST_EVENT_TIME, description="unix seconds")]
    event_type: EventTypeName | None = None
    session_id: ExternalId | None = None


_DECODER = msgspec.json.Decoder(EventMessage)
_FIELD_REASONS = {
    ("event_time", Problem.BAD_VALUE): "absurd_timestamp",
    ("event_type", Problem.WRONG_TYPE): "unknown_event_type",
    ("event_type", Problem.BAD_VALUE): "unknown_event_type",
}


class Event(msgspec.Struct, frozen=True, gc=False):  # gc=False: see schemas.recommendations
    event_id: str
    user_id: str
    item_id: str
    event_time: float
    event_type: EventType = EventType.CLICK
    session_id: str | None = None

    def to_bytes(self) -> bytes:
        name = self.event_type.name.lower()
        message = EventMessage(
            self.event_id, self.user_id, self.item_id, self.event_time, name, self.session_id
        )
        return encode(message)

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
        message = decode(data, _DECODER, MAX_EVENT_BYTES, _FIELD_REASONS)
        latest = (time.time() if now is None else now) + max_future_skew_s
        if message.event_time > latest:
            detail = (
                f"event_time {message.event_time} is after now + {max_future_skew_s}s (unix seconds expected)"
            )
            raise InvalidMessage("absurd_timestamp", detail)
        session_id = message.session_id
        # str() of a string id is the id itself; of an integer id, its decimal string.
        return cls(
            str(message.event_id),
            str(message.user_id),
            str(message.item_id),
            message.event_time,
            _event_type(message.event_type, topic_kind),
            None if session_id is None else str(session_id),
        )

    @classmethod
    def from_stored(cls, data: bytes) -> "Event":
        """Read an event this project wrote itself (``to_bytes``), whatever topic it came from."""
        return cls.from_bytes(data, topic_kind=None, max_future_skew_s=math.inf)


def _event_type(name: str | None, topic_kind: str | None) -> EventType:
    accepted = tuple(EventType) if topic_kind is None else TOPIC_EVENT_TYPES[topic_kind]
    if name is None:
        return accepted[0]
    event_type = EVENT_TYPES[name]
    if event_type not in accepted:
        allowed = ", ".join(t.name.lower() for t in accepted)
        raise InvalidMessage(
            "unknown_event_type", f"event_type {name!r} is not accepted on the {topic_kind} topic ({allowed})"
        )
    return event_type
