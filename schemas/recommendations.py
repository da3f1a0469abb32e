"""Recommendation lists: what the streamer publishes for every applied event, keyed by user id.

Wire format (JSON object)::

    {"user_id": "u-42",
     "items": [{"item_id": "214536506", "score": 7.31}, ...],   # best first
     "model_version": "20261122T073800Z-3f2a1c9e",
     "event_id": "e-1", "event_time": 1396860669.277,
     "produced_at": 1763797080.123,
     "source": {"topic": "click", "partition": 0, "offset": 1234},
     "basis": "model"}                                           # or "popularity"

``source`` names the event that triggered the list, so a consumer can de-duplicate lists re-sent
after a crash (they are identical to the first, unless popularity ranked them: ``basis``). Scores
are written rounded to :data:`SCORE_DECIMALS` places.
"""

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.codec import decode, encode
from schemas.fields import Name, NonNegative

MAX_RECOMMENDATION_BYTES = 1 << 20
SCORE_DECIMALS = 6


# gc=False on the hot path's Structs: they hold no container that could close a reference cycle, so
# the garbage collector need not track the thousands made per batch.
class RankedItem(msgspec.Struct, frozen=True, gc=False):
    """A recommended item and its score (higher is better)."""

    item_id: Name
    score: float


class SourcePosition(msgspec.Struct, frozen=True, gc=False):
    """The input record (topic, partition, offset) a list or a dead letter is about."""

    topic: Name
    partition: NonNegative
    offset: NonNegative


class Recommendation(msgspec.Struct, frozen=True, gc=False):
    """Published on the recommendations topic for every applied event, keyed by user_id. Items are
    best first. A list re-sent for a redelivered event is identical but for produced_at; source
    identifies the triggering event."""

    user_id: Name
    items: Annotated[tuple[RankedItem, ...], Meta(description="best first")]
    model_version: Name
    event_id: Name
    event_time: float
    produced_at: Annotated[float, Meta(description="unix seconds when the list was built")]
    source: SourcePosition
    basis: Annotated[
        Literal["model", "popularity"],
        Meta(description="model: ranked by model_version; popularity: the model had nothing to say"),
    ] = "model"

    def to_bytes(self) -> bytes:
        rounded = tuple(RankedItem(item.item_id, round(item.score, SCORE_DECIMALS)) for item in self.items)
        return encode_list(msgspec.structs.replace(self, items=rounded))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Recommendation":
        return decode(data, _DECODER, MAX_RECOMMENDATION_BYTES)


_DECODER = msgspec.json.Decoder(Recommendation)


def encode_list(recommendation: Recommendation) -> bytes:
    """The bytes ``to_bytes`` writes, for a list whose scores are rounded to :data:`SCORE_DECIMALS`
    places already: the streamer rounds a whole wave of scores at once (numpy) and calls this."""
    return encode(recommendation)
