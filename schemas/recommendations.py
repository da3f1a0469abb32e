"""Recommendation lists: what the streamer publishes for every applied event, keyed by user id.

Wire format (JSON object)::

    {"user_id": "u-42",
     "items": [{"item_id": "214536506", "score": 7.31}, ...],   # best first
     "model_version": "20261122T073800Z-3f2a1c9e",
     "event_id": "e-1", "event_time": 1396860669.277,
     "produced_at": 1763797080.123,
     "source": {"topic": "click", "partition": 0, "offset": 1234}}

``source`` names the event that triggered the list, so a consumer can de-duplicate lists re-sent
after a crash (they are identical to the first).
"""

from dataclasses import dataclass

from schemas._json import decode_object, encode, required_int, required_number, required_str
from schemas.errors import InvalidMessage

MAX_RECOMMENDATION_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RankedItem:
    item_id: str
    score: float


@dataclass(frozen=True, slots=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int

    def to_dict(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_dict(cls, obj: object) -> "SourcePosition":
        if not isinstance(obj, dict):
            raise InvalidMessage("wrong_type", "'source' must be an object")
        return cls(required_str(obj, "topic"), required_int(obj, "partition"), required_int(obj, "offset"))


@dataclass(frozen=True, slots=True)
class Recommendation:
    user_id: str
    items: tuple[RankedItem, ...]
    model_version: str
    event_id: str
    event_time: float
    produced_at: float
    source: SourcePosition

    def to_bytes(self) -> bytes:
        return encode(
            {
                "user_id": self.user_id,
                "items": [{"item_id": i.item_id, "score": round(i.score, 6)} for i in self.items],
                "model_version": self.model_version,
                "event_id": self.event_id,
                "event_time": self.event_time,
                "produced_at": self.produced_at,
                "source": self.source.to_dict(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "Recommendation":
        obj = decode_object(data, MAX_RECOMMENDATION_BYTES)
        raw_items = obj.get("items")
        if not isinstance(raw_items, list):
            raise InvalidMessage("wrong_type", "'items' must be a list")
        items = tuple(RankedItem(required_str(i, "item_id"), required_number(i, "score")) for i in raw_items)
        return cls(
            user_id=required_str(obj, "user_id"),
            items=items,
            model_version=required_str(obj, "model_version"),
            event_id=required_str(obj, "event_id"),
            event_time=required_number(obj, "event_time"),
            produced_at=required_number(obj, "produced_at"),
            source=SourcePosition.from_dict(obj.get("source")),
        )
