"""The stored user-state layout: a version byte, then MessagePack; anything else is refused."""

import msgspec
import pytest

from schemas.errors import InvalidMessage
from schemas.user_states import USER_STATE_VERSION, StoredUserState, decode_user_state, encode_user_state

STATE = StoredUserState(
    model_version="v-1",
    hidden_shape=(1, 4),
    hidden=bytes(range(16)),
    recent_items=["214536502", "ü-😀"],
    recent_types=[0, 2],
    last_event_time=1_700_000_000.25,
    session_id=None,
    applied={"click/0": 17, "buy/3": 2**40},
    events_seen=2,
    recent_events=b"\x00" * 16,
)


def test_a_state_round_trips_and_starts_with_its_version_byte():
    data = encode_user_state(STATE)
    assert data[0] == USER_STATE_VERSION
    assert decode_user_state(data) == STATE


def test_a_state_in_the_older_json_header_layout_is_told_apart_by_its_first_byte():
    with pytest.raises(InvalidMessage) as refused:
        decode_user_state(b"S1\x02\x00\x00\x00{}")
    assert refused.value.reason == "unknown_state_format"


@pytest.mark.parametrize("cut", [1, 5, -1])
def test_a_truncated_state_is_refused_as_corrupt(cut):
    with pytest.raises(InvalidMessage) as refused:
        decode_user_state(encode_user_state(STATE)[:cut])
    assert refused.value.reason == "corrupt_state"


def test_a_state_with_a_field_of_the_wrong_type_is_refused_as_corrupt():
    with pytest.raises(InvalidMessage) as refused:
        fields = [7, [1, 4], b"", [], [], 0.0, None, {}, 0, b""]  # a model version that is a number
        decode_user_state(bytes([USER_STATE_VERSION]) + msgspec.msgpack.encode(fields))
    assert refused.value.reason == "corrupt_state"


def test_a_hidden_state_whose_size_does_not_match_its_shape_is_refused_as_corrupt():
    with pytest.raises(InvalidMessage) as refused:
        decode_user_state(encode_user_state(msgspec.structs.replace(STATE, hidden_shape=(1, 5))))
    assert refused.value.reason == "corrupt_state"
