"""Model announcements: what the retrainer publishes on the compacted ``model-updates`` topic when it
promotes a model, keyed by ``b"current"`` so compaction keeps the latest.

The retrainer also publishes each announcement a second time under ``b"version/<version>"`` (the
history), so compaction keeps every promoted model's announcement and a starting worker can walk
back to the newest one whose artifact verifies. Followers act on the other keys only; the history
is read at start.

Wire format (JSON object)::

    {"version": "20261122T080000Z-3f2a1c9e", "path": "20261122T080000Z-3f2a1c9e",
     "checksum": "<sha256 of the weights file>", "created_at": 1763798400.0,
     "metrics": {"recall@20": 0.61, "mrr@20": 0.27}}

``path`` is relative to the model store (a directory shared by the retrainer and the streamers);
an absolute path is used as given.
"""

from typing import Annotated

import msgspec
from msgspec import Meta

from schemas.codec import decode, encode
from schemas.fields import Name, Sha256

ANNOUNCEMENT_KEY = b"current"
HISTORY_KEY_PREFIX = b"version/"
MAX_ANNOUNCEMENT_BYTES = 64 * 1024


class ModelAnnouncement(msgspec.Struct, frozen=True):
    """Published on the compacted model-updates topic under the key 'current' when a model is
    promoted, and again under 'version/<version>' so compaction keeps each promoted model's
    announcement. path is relative to the shared model store."""

    version: Name
    path: Annotated[str, Meta(min_length=1, max_length=4096)]
    checksum: Annotated[Sha256, Meta(description="SHA-256 of the weights file")]
    created_at: float
    metrics: dict[str, float] = {}

    def to_bytes(self) -> bytes:
        return encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelAnnouncement":
        return decode(data, _DECODER, MAX_ANNOUNCEMENT_BYTES)


_DECODER = msgspec.json.Decoder(ModelAnnouncement)


def history_key(version: str) -> bytes:
    """The key under which compaction keeps this version's announcement."""
    return HISTORY_KEY_PREFIX + version.encode()


def is_history_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(HISTORY_KEY_PREFIX)
