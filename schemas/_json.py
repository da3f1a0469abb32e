"""Small helpers for decoding and checking JSON objects field by field.

Whatever the bytes, decoding either returns an object or raises :class:`InvalidMessage`: nesting
deeper than Python's recursion limit, numbers too large for a float and strings that are not valid
Unicode (a lone surrogate escape such as ``"\\ud800"`` decodes, but cannot be encoded again) are
refused here, so nothing downstream meets them.
"""

import json
import math
from typing import Any

from schemas.errors import InvalidMessage


def decode_object(data: bytes, max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise InvalidMessage("oversized", f"message is {len(data)} bytes, the limit is {max_bytes}")
    try:
        obj = json.loads(data)
    except RecursionError:
        raise InvalidMessage("malformed_json", "JSON nested too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError, and ints past Python's 4,300-digit limit
        raise InvalidMessage("malformed_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidMessage("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def required_str(obj: dict[str, Any], field: str, max_len: int = 256) -> str:
    if field not in obj or obj[field] is None:
        raise InvalidMessage("missing_field", f"'{field}' is required")
    return _checked_str(obj[field], field, max_len)


def optional_str(obj: dict[str, Any], field: str, max_len: int = 256) -> str | None:
    value = obj.get(field)
    return None if value is None else _checked_str(value, field, max_len)


def required_number(obj: dict[str, Any], field: str) -> float:
    if field not in obj or obj[field] is None:
        raise InvalidMessage("missing_field", f"'{field}' is required")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage("wrong_type", f"'{field}' must be a finite number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise InvalidMessage("wrong_type", f"'{field}' must be a finite number, got {_shown(value)}")
    return number


def required_int(obj: dict[str, Any], field: str) -> int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage("wrong_type", f"'{field}' must be an integer, got {_shown(value)}")
    return value


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _checked_str(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidMessage("wrong_type", f"'{field}' must be a string, got {type(value).__name__}")
    if not value or len(value) > max_len:
        raise InvalidMessage("wrong_type", f"'{field}' must be 1 to {max_len} characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidMessage("wrong_type", f"'{field}' is not valid Unicode (a lone surrogate)") from None
    return value


def _shown(value: Any) -> str:
    """A value for an error message: at most 80 characters of its repr (a huge integer has 4,000 digits)."""
    text = (
        repr(value)
        if not isinstance(value, int) or value.bit_length() < 256
        else f"an integer of {value.bit_length()} bits"
    )
    return text if len(text) <= 80 else text[:77] + "..."
