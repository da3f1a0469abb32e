"""Message contracts shared by the streamer, the retrainer and outside producers.

Every message is JSON on the wire, defined once as a msgspec Struct: decoding validates types,
required fields, lengths and ranges in the library, encoding writes the same Struct, and the JSON
Schema files under ``schemas/json/`` are generated from it (:mod:`schemas.json_schemas`) for
producers in other languages. Each module here defines one message type with ``to_bytes``/
``from_bytes``; ``from_bytes`` raises :class:`InvalidMessage` with a short machine-readable
``reason`` and a human-readable detail naming the field (:mod:`schemas.reasons`).
"""

from schemas.errors import InvalidMessage
from schemas.events import EVENT_TYPES, Event, EventType
from schemas.recommendations import RankedItem, Recommendation, SourcePosition

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventType",
    "InvalidMessage",
    "RankedItem",
    "Recommendation",
    "SourcePosition",
]
