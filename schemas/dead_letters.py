"""Dead letters: input the streamer could not apply, kept with the reason and the original bytes.

Wire format (JSON object)::

    {"reason": "malformed_json", "detail": "JSON is malformed: invalid character (byte 0)",
     "source": {"topic": "click", "partition": 0, "offset": 17},
     "original_b64": "bm90IGpzb24=", "received_at": 1763797080.123, "original_key_b64": "dS00Mg=="}

Reasons: ``oversized``, ``malformed_json``, ``missing_field``, ``wrong_type``,
``unknown_event_type``, ``absurd_timestamp``, ``unprocessable`` (anything else that failed while
applying the record; the detail names the error). ``unknown_item`` is no longer written (an item the
model does not know gets a list now) but still read, for dead letters written before.

A dead letter always fits in a Kafka message: an original value longer than
:data:`MAX_ORIGINAL_BYTES` (or key longer than :data:`MAX_ORIGINAL_KEY_BYTES`) is kept as its
prefix, with ``original_truncated``, ``original_size`` and ``original_sha256`` of the whole value
(likewise ``original_key_truncated``, ``original_key_size``, ``original_key_sha256``). A record
with a null value has ``"original_null": true`` and an empty ``original_b64``.
"""

import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.codec import decode, encode
from schemas.fields import NonNegative, Sha256
from schemas.recommendations import SourcePosition

# With base64 (4/3) and the fields around them, well under the 1 MiB that producers and brokers
# accept by default (max.request.size, message.max.bytes).
MAX_ORIGINAL_BYTES = 256 << 10
MAX_ORIGINAL_KEY_BYTES = 16 << 10
MAX_DETAIL_CHARS = 1000
MAX_DEAD_LETTER_BYTES = 1 << 20

DeadLetterReason = Literal[
    "oversized",
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "absurd_timestamp",
    "unknown_item",
    "unprocessable",
]


class DeadLetterMessage(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """Input the streamer could not apply, with the reason and the original bytes (base64). An
    original over 256 KiB (a key over 16 KiB) is kept as its prefix with its full size and
    SHA-256."""

    reason: DeadLetterReason
    detail: Annotated[str, Meta(min_length=1, max_length=4096)]
    source: SourcePosition
    original_b64: bytes
    original_truncated: bool = False
    original_size: Annotated[NonNegative, Meta(description="size of the whole original value")] | None = None
    original_sha256: Sha256 | None = None
    received_at: float
    original_null: Annotated[bool, Meta(description="the record had a null value")] = False
    original_key_b64: bytes | None = None
    original_key_truncated: bool = False
    original_key_size: NonNegative | None = None
    original_key_sha256: Sha256 | None = None


_DECODER = msgspec.json.Decoder(DeadLetterMessage)


class DeadLetter(msgspec.Struct, frozen=True):
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
        original, key = self.original or b"", self.original_key
        message = DeadLetterMessage(
            reason=self.reason,
            # A lone surrogate (from the input) cannot be written as UTF-8.
            detail=detail.encode(errors="replace").decode(),
            source=self.source,
            original_b64=original[:MAX_ORIGINAL_BYTES],
            **_whole_if_cut("original", original, MAX_ORIGINAL_BYTES),
            received_at=self.received_at,
            original_null=self.original is None,
            original_key_b64=None if key is None else key[:MAX_ORIGINAL_KEY_BYTES],
            **_whole_if_cut("original_key", key or b"", MAX_ORIGINAL_KEY_BYTES),
        )
        return encode(message)

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeadLetter":
        """The letter as written (a truncated original stays truncated: see ``original_size``)."""
        message = decode(data, _DECODER, MAX_DEAD_LETTER_BYTES)
        return cls(
            reason=message.reason,
            detail=message.detail,
            source=message.source,
            original=None if message.original_null else message.original_b64,
            original_key=message.original_key_b64,
            received_at=message.received_at,
        )


def _whole_if_cut(name: str, data: bytes, limit: int) -> dict:
    """The ``{name}_truncated``, ``_size`` and ``_sha256`` fields of ``data`` if it is over ``limit``."""
    if len(data) <= limit:
        return {}
    return {
        f"{name}_truncated": True,
        f"{name}_size": len(data),
        f"{name}_sha256": hashlib.sha256(data).hexdigest(),
    }
