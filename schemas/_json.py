"""Small helpers for decoding and checking JSON objects field by field."""

import json
import math
from typing import Any

from schemas.errors import InvalidMessage


def decode_object(data: bytes, max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise InvalidMessage("oversized", f"message is {len(data)} bytes, the limit is {max_bytes}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage("malformed_json", str(exc)) from None
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
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMessage("wrong_type", f"'{field}' must be a finite number, got {value!r}")
    return float(value)


def required_int(obj: dict[str, Any], field: str) -> int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage("wrong_type", f"'{field}' must be an integer, got {value!r}")
    return value


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _checked_str(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidMessage("wrong_type", f"'{field}' must be a string, got {type(value).__name__}")
    if not value or len(value) > max_len:
        raise InvalidMessage("wrong_type", f"'{field}' must be 1 to {max_len} characters")
    return value
