"""Dead letters: input the streamer could not apply, kept with the reason and the original bytes.

Wire format (JSON object)::

    {"reason": "malformed_json", "detail": "Expecting value: line 1 column 1 (char 0)",
     "source": {"topic": "click", "partition": 0, "offset": 17},
     "original_b64": "bm90IGpzb24=", "original_key_b64": "dS00Mg==",
     "received_at": 1763797080.123}

Reasons: ``oversized``, ``malformed_json``, ``missing_field``, ``wrong_type``,
``unknown_event_type``, ``absurd_timestamp``, ``unknown_item``, ``unprocessable`` (anything else
that failed while applying the record; the detail names the error).

A dead letter always fits in a Kafka message: an original value longer than
:data:`MAX_ORIGINAL_BYTES` (or key longer than :data:`MAX_ORIGINAL_KEY_BYTES`) is kept as its
prefix, with ``original_truncated``, ``original_size`` and ``original_sha256`` of the whole value
(likewise ``original_key_truncated``, ``original_key_size``, ``original_key_sha256``). A record
with a null value has ``"original_null": true`` and an empty ``original_b64``.
"""

import base64
import hashlib
from dataclasses import dataclass

from schemas._json import decode_object, encode, optional_str, required_number, required_str
from schemas.errors import InvalidMessage
from schemas.recommendations import SourcePosition

# With base64 (4/3) and the fields around them, well under the 1 MiB that producers and brokers
# accept by default (max.request.size, message.max.bytes).
MAX_ORIGINAL_BYTES = 256 << 10
MAX_ORIGINAL_KEY_BYTES = 16 << 10
MAX_DETAIL_CHARS = 1000
MAX_DEAD_LETTER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    source: SourcePosition
    original: bytes | None
    original_key: bytes | None
    received_at: float

    @property
    def kafka_key(self) -> bytes | None:
        """The key to publish the letter with: the original's, cut to what a message can carry."""
        return None if self.original_key is None else self.original_key[:MAX_ORIGINAL_KEY_BYTES]

    def to_bytes(self) -> bytes:
        detail = (
            self.detail
            if len(self.detail) <= MAX_DETAIL_CHARS
            else self.detail[: MAX_DETAIL_CHARS - 3] + "..."
        )
        obj = {
            "reason": self.reason,
            "detail": detail.encode(errors="replace").decode(),
            "source": self.source.to_dict(),
            **_bounded("original", self.original or b"", MAX_ORIGINAL_BYTES),
            "received_at": self.received_at,
        }
        if self.original is None:
            obj["original_null"] = True
        if self.original_key is not None:
            obj |= _bounded("original_key", self.original_key, MAX_ORIGINAL_KEY_BYTES)
        return encode(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeadLetter":
        """The letter as written (a truncated original stays truncated: see ``original_size``)."""
        obj = decode_object(data, MAX_DEAD_LETTER_BYTES)
        key = optional_str(obj, "original_key_b64", max_len=1 << 20)
        original = base64.b64decode(_base64_field(obj, "original_b64"))
        return cls(
            reason=required_str(obj, "reason"),
            detail=required_str(obj, "detail", max_len=4096),
            source=SourcePosition.from_dict(obj.get("source")),
            original=None if obj.get("original_null") is True else original,
            original_key=None if key is None else base64.b64decode(key),
            received_at=required_number(obj, "received_at"),
        )


def _base64_field(obj: dict, field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):  # may be empty: a record with an empty or null value
        raise InvalidMessage("missing_field", f"'{field}' must be a base64 string")
    return value


def _bounded(name: str, data: bytes, limit: int) -> dict:
    """``{name}_b64`` of ``data``, or of its first ``limit`` bytes with the whole one's size and hash."""
    if len(data) <= limit:
        return {f"{name}_b64": base64.b64encode(data).decode()}
    return {
        f"{name}_b64": base64.b64encode(data[:limit]).decode(),
        f"{name}_truncated": True,
        f"{name}_size": len(data),
        f"{name}_sha256": hashlib.sha256(data).hexdigest(),
    }
