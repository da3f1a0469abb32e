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

from dataclasses import dataclass, field

from schemas._json import decode_object, encode, required_number, required_str
from schemas.errors import InvalidMessage

ANNOUNCEMENT_KEY = b"current"
HISTORY_KEY_PREFIX = b"version/"
MAX_ANNOUNCEMENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ModelAnnouncement:
    version: str
    path: str
    checksum: str
    created_at: float
    metrics: dict[str, float] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return encode(
            {
                "version": self.version,
                "path": self.path,
                "checksum": self.checksum,
                "created_at": self.created_at,
                "metrics": self.metrics,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelAnnouncement":
        obj = decode_object(data, MAX_ANNOUNCEMENT_BYTES)
        metrics = obj.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(v, int | float) for v in metrics.values()):
            raise InvalidMessage("wrong_type", "'metrics' must be an object of numbers")
        return cls(
            version=required_str(obj, "version"),
            path=required_str(obj, "path", max_len=4096),
            checksum=required_str(obj, "checksum"),
            created_at=required_number(obj, "created_at"),
            metrics={k: float(v) for k, v in metrics.items()},
        )


def history_key(version: str) -> bytes:
    """The key under which compaction keeps this version's announcement."""
    return HISTORY_KEY_PREFIX + version.encode()


def is_history_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(HISTORY_KEY_PREFIX)
