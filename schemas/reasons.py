"""msgspec's decoding errors as the stable reasons of :class:`InvalidMessage`, with a detail that
names the field.

Reasons are metric labels and dead-letter fields that producers and dashboards count, so they stay
those of the hand-written validators msgspec replaced: a field absent or null is ``missing_field``;
another JSON type, a number no float can hold, or a value outside its constraints is ``wrong_type``;
bytes that are not one JSON object are ``malformed_json``; a field a message type does not define,
where it forbids unknown fields (the query API's requests), is ``unknown_field``. A message type may
give a field's problems a reason of their own (an event's ``event_type``: ``unknown_event_type``).

msgspec refuses NaN, Infinity and lone surrogate escapes (``"\\ud800"``) as malformed JSON, giving
only their byte offset; they were ``wrong_type`` before and still are.
"""

import re
from collections.abc import Mapping
from enum import Enum

import msgspec

from schemas.errors import InvalidMessage

MAX_DETAIL_CHARS = 300


class Problem(Enum):
    MISSING = "missing"  # absent, or null where a value is required
    WRONG_TYPE = "wrong type"  # another JSON type, or a number beyond float's range
    BAD_VALUE = "bad value"  # the right type outside its constraints: length, range, pattern, enum, base64


# (field, problem) -> reason, where a message type overrides the default.
FieldReasons = Mapping[tuple[str, Problem], str]

DEFAULT_REASONS = {
    Problem.MISSING: "missing_field",
    Problem.WRONG_TYPE: "wrong_type",
    Problem.BAD_VALUE: "wrong_type",
}

# A key of an object is located as "at `key` in `$.field`".
_LOCATION = re.compile(r" - at (?P<key>`key` in )?`\$\.?(?P<path>[^`]*)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_BYTE_OFFSET = re.compile(r"\(byte (?P<offset>\d+)\)$")


def from_validation_error(error: msgspec.ValidationError, field_reasons: FieldReasons) -> InvalidMessage:
    """The JSON was well formed, but a field (or the whole message) does not fit the contract."""
    message = str(error)
    located = _LOCATION.search(message)
    field = (located["path"] + ("[key]" if located["key"] else "")) if located else ""
    message = message[: located.start()] if located else message
    if missing := _MISSING_FIELD.match(message):
        field = f"{field}.{missing['name']}" if field else missing["name"]
        return _invalid(Problem.MISSING, field, f"'{field}' is required", field_reasons)
    if unknown := _UNKNOWN_FIELD.match(message):  # only from Structs that forbid unknown fields
        field = f"{field}.{unknown['name']}" if field else unknown["name"]
        return InvalidMessage("unknown_field", f"'{field}' is not a field of this message"[:MAX_DETAIL_CHARS])
    if not field:  # the message itself has the wrong type: an array, a string, a number
        return InvalidMessage("malformed_json", f"expected a JSON object, {message.partition(', ')[2]}")
    if message.endswith("got `null`"):
        return _invalid(Problem.MISSING, field, f"'{field}' is required, got null", field_reasons)
    problem = (
        Problem.WRONG_TYPE
        if ", got `" in message or message.startswith("Number out of range")
        else Problem.BAD_VALUE
    )
    return _invalid(problem, field, f"'{field}': {message[:1].lower()}{message[1:]}", field_reasons)


def from_decode_error(error: msgspec.DecodeError, data: bytes) -> InvalidMessage:
    """The bytes are not JSON to msgspec (nor UTF-8, nor complete)."""
    message = str(error)
    offset = _BYTE_OFFSET.search(message)
    where = f"at byte {offset['offset']}" if offset else "somewhere"
    if "surrogate" in message:
        return InvalidMessage("wrong_type", f"a string {where} has a lone surrogate: not valid Unicode")
    if offset and data.startswith((b"NaN", b"Infinity"), int(offset["offset"])):
        return InvalidMessage("wrong_type", f"the number {where} is NaN or Infinity, not a finite number")
    return InvalidMessage("malformed_json", message[:MAX_DETAIL_CHARS])


def _invalid(problem: Problem, field: str, detail: str, field_reasons: FieldReasons) -> InvalidMessage:
    reason = field_reasons.get((field, problem), DEFAULT_REASONS[problem])
    return InvalidMessage(reason, detail[:MAX_DETAIL_CHARS])
