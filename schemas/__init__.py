"""Message contracts shared by the streamer, the retrainer and outside producers.

Every message is JSON on the wire. Each module here defines one message type as a frozen dataclass
with ``to_bytes``/``from_bytes``; ``from_bytes`` validates and raises :class:`InvalidMessage` with a
short machine-readable ``reason`` and a human-readable detail. The matching JSON Schema files under
``schemas/json/`` let producers in other languages validate the same contract.
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
