"""Dead letters: input the streamer could not apply, kept with the reason and the original bytes.

Wire format (JSON object)::

    {"reason": "malformed_json", "detail": "Expecting value: line 1 column 1 (char 0)",
     "source": {"topic": "click", "partition": 0, "offset": 17},
     "original_b64": "bm90IGpzb24=", "original_key_b64": "dS00Mg==",
     "received_at": 1763797080.123}

Reasons: ``oversized``, ``malformed_json``, ``missing_field``, ``wrong_type``,
``unknown_event_type``, ``absurd_timestamp``, ``unknown_item``.
"""

import base64
from dataclasses import dataclass

from schemas._json import decode_object, encode, optional_str, required_number, required_str
from schemas.recommendations import SourcePosition

MAX_DEAD_LETTER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    source: SourcePosition
    original: bytes
    original_key: bytes | None
    received_at: float

    def to_bytes(self) -> bytes:
        obj = {
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source.to_dict(),
            "original_b64": base64.b64encode(self.original).decode(),
            "received_at": self.received_at,
        }
        if self.original_key is not None:
            obj["original_key_b64"] = base64.b64encode(self.original_key).decode()
        return encode(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeadLetter":
        obj = decode_object(data, MAX_DEAD_LETTER_BYTES)
        key = optional_str(obj, "original_key_b64", max_len=1 << 20)
        return cls(
            reason=required_str(obj, "reason"),
            detail=required_str(obj, "detail", max_len=4096),
            source=SourcePosition.from_dict(obj.get("source")),
            original=base64.b64decode(required_str(obj, "original_b64", max_len=1 << 20)),
            original_key=None if key is None else base64.b64decode(key),
            received_at=required_number(obj, "received_at"),
        )
