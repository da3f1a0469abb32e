"""JSON on the wire: bytes to a message Struct within a size limit, every failure an
:class:`InvalidMessage`; and a Struct to bytes."""

from typing import TypeVar

import msgspec

from schemas.errors import InvalidMessage
from schemas.reasons import FieldReasons, from_decode_error, from_validation_error

T = TypeVar("T")

_NO_OVERRIDES: FieldReasons = {}

encode = msgspec.json.Encoder().encode


def decode(
    data: bytes,
    decoder: msgspec.json.Decoder[T],
    max_bytes: int,
    field_reasons: FieldReasons = _NO_OVERRIDES,
) -> T:
    """``data`` decoded and validated by ``decoder``; ``field_reasons`` gives some of a message
    type's field problems their own reason (see :mod:`schemas.reasons`)."""
    if len(data) > max_bytes:
        raise InvalidMessage("oversized", f"message is {len(data)} bytes, the limit is {max_bytes}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, field_reasons) from None
    except msgspec.DecodeError as exc:
        raise from_decode_error(exc, data) from None
    except RecursionError:
        raise InvalidMessage("malformed_json", "JSON nested too deeply") from None
