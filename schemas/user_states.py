"""A user's state as stored in the state changelog topic: one version byte, then MessagePack.

The layout is the fields of :class:`StoredUserState` in order (a MessagePack array: no field names
in each of millions of values), the hidden state as raw float32 bytes. The first byte tells layouts
apart: :data:`USER_STATE_VERSION` for this one; the older JSON-header layout starts with ``b"S1"``
and is read by its own code. A field added later goes at the end, with a default, so that states
written before it still decode.
"""

import math

import msgspec

from schemas.errors import InvalidMessage

USER_STATE_VERSION = 2
_VERSION_BYTE = bytes([USER_STATE_VERSION])
FLOAT32_BYTES = 4


class StoredUserState(msgspec.Struct, array_like=True, frozen=True):
    model_version: str
    hidden_shape: tuple[int, ...]
    hidden: bytes  # float32, C order
    recent_items: list[str]
    recent_types: list[int]
    last_event_time: float
    session_id: str | None
    applied: dict[str, int]  # "topic/partition" -> highest offset applied
    events_seen: int
    recent_events: bytes  # digests of the most recent event ids, newest last
    bought: list[str] = []  # items bought, oldest first, bounded
    bought_at: list[float] = []  # their event times
    last_list: list[str] = []  # the items of the last list served from a model, best first
    last_list_version: str = ""  # the model version that served it


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(StoredUserState)


def encode_user_state(state: StoredUserState) -> bytes:
    return _VERSION_BYTE + _ENCODER.encode(state)


def decode_user_state(data: bytes) -> StoredUserState:
    """Raises :class:`InvalidMessage` (reason ``unknown_state_format`` or ``corrupt_state``)."""
    if data[:1] != _VERSION_BYTE:
        raise InvalidMessage("unknown_state_format", f"the state starts with {data[:2]!r}")
    try:
        state = _DECODER.decode(memoryview(data)[1:])
    except msgspec.DecodeError as exc:  # ValidationError too
        raise InvalidMessage("corrupt_state", str(exc)) from None
    if len(state.hidden) != FLOAT32_BYTES * math.prod(state.hidden_shape):
        detail = f"{len(state.hidden)} bytes of hidden state for shape {state.hidden_shape}"
        raise InvalidMessage("corrupt_state", detail)
    return state
