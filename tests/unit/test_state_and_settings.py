from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from streamer.common.settings import SETTINGS, ConfigError, Settings
from streamer.worker.state import StateDecodeError, UserState


def test_user_state_round_trips_exactly():
    hidden = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    state = UserState(hidden, "v1", ["a", "b"], [0, 1], 123.5, "s1", {"click/0": 9, "buy/2": 3}, 2)
    state.remember_event("e-1", keep=4)
    back = UserState.from_bytes(state.to_bytes())
    assert back.recent_events == state.recent_events and back.seen_event("e-1")
    assert np.array_equal(back.hidden, hidden) and back.hidden.dtype == np.float32
    assert (back.model_version, back.recent_items, back.recent_types) == ("v1", ["a", "b"], [0, 1])
    assert (back.last_event_time, back.session_id, back.applied, back.events_seen) == (
        123.5,
        "s1",
        state.applied,
        2,
    )


def test_already_applied_compares_offsets_per_input_partition():
    state = UserState(np.zeros((1, 2), np.float32), "v", applied={"click/1": 5})
    assert state.already_applied("click", 1, 5) and state.already_applied("click", 1, 4)
    assert not state.already_applied("click", 1, 6)
    assert not state.already_applied("click", 0, 0)
    assert not state.already_applied("buy", 1, 0)


def test_a_state_written_before_partitions_were_told_apart_reads_its_offsets_as_its_own_partitions():
    old = UserState(np.zeros((1, 2), np.float32), "v", applied={"click": 5, "buy": 2}).to_bytes()
    assert UserState.from_bytes(old, partition=3).applied == {"click/3": 5, "buy/3": 2}


def test_only_the_most_recent_event_ids_are_remembered():
    state = UserState(np.zeros((1, 2), np.float32), "v")
    for n in range(5):
        state.remember_event(f"e-{n}", keep=3)
    assert [state.seen_event(f"e-{n}") for n in range(5)] == [False, False, True, True, True]


@pytest.mark.parametrize("data", [b"XX garbage", b"S1", b"S1\x05\x00\x00\x00{}", b"S1\x02\x00\x00\x00[]"])
def test_unreadable_state_bytes_are_refused(data):
    with pytest.raises(StateDecodeError):
        UserState.from_bytes(data)


def test_defaults_are_valid_and_every_setting_has_exactly_one_field_in_its_group():
    settings = Settings.from_env({})
    assert settings.worker.top_k == 20 and settings.sessions.mode == "session"
    group_fields = sorted(
        f"{group.name}.{field.name}" for group in fields(Settings) for field in fields(group.type)
    )
    assert group_fields == sorted(s.field for s in SETTINGS.values())


def test_settings_are_read_into_their_service_groups():
    settings = Settings.from_env(
        {"STREAMREC_RETRAIN_EPOCHS": "7", "STREAMREC_KAFKA_SASL_USERNAME": "u", "STREAMREC_BATCH_MAX": "9"}
    )
    assert settings.retrainer.epochs == 7 and settings.kafka.sasl_username == "u"
    assert settings.worker.batch_max == 9


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STREAMREC_TOP_K": "lots"}, "STREAMREC_TOP_K"),
        ({"STREAMREC_TOP_K": "0"}, "STREAMREC_TOP_K"),
        ({"STREAMREC_SESSION_MODE": "forever"}, "STREAMREC_SESSION_MODE"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"STREAMREC_EXCLUDE_CURRENT_ITEM": "maybe"}, "STREAMREC_EXCLUDE_CURRENT_ITEM"),
        ({"STREAMREC_APP_ID": "  "}, "STREAMREC_APP_ID"),
    ],
)
def test_a_bad_setting_is_named_in_the_error(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_the_readme_documents_every_setting_with_its_default():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for setting in SETTINGS.values():
        assert f"| `{setting.env}` | `{setting.default}` |" in readme, setting.env


# Written by UserState.to_bytes() of the JSON-header layout (commit c940c89), before the move to
# MessagePack: a worker upgraded in place must still read every state in its RocksDB and changelog.
STATE_WRITTEN_BY_THE_PREVIOUS_LAYOUT = bytes.fromhex(
    "5331be0000007b2276223a223230323631313239543132303030305a2d3031323361626364222c227368617065223a5b322c385d2c226974656d73223a5b226974656d2d33222c225c75303066632d37225d2c227479706573223a5b302c315d2c2274223a313730303030303132332e352c2273223a22732d31222c226170706c696564223a7b22636c69636b2f32223a34312c226275792f30223a377d2c226e223a322c2265223a224d584f4753557678445a3848427357425355785950673d3d227d000080bfdedd5dbfbcbb3bbf9a9919bfefeeeebeabaaaabecdcc4cbe898888bd8988883dcdcc4c3eabaaaa3eefeeee3e9a99193fbcbb3b3fdedd5d3f0000803f"
)


def test_a_state_written_by_the_previous_layout_is_read_after_the_upgrade():
    state = UserState.from_bytes(STATE_WRITTEN_BY_THE_PREVIOUS_LAYOUT)
    assert np.array_equal(state.hidden, np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8))
    assert (state.model_version, state.recent_items, state.recent_types) == (
        "20261129T120000Z-0123abcd",
        ["item-3", "ü-7"],
        [0, 1],
    )
    assert (state.last_event_time, state.session_id, state.events_seen) == (1700000123.5, "s-1", 2)
    assert state.applied == {"click/2": 41, "buy/0": 7}
    assert state.seen_event("e-1") and state.seen_event("e-2") and not state.seen_event("e-3")
    again = UserState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes() and again.to_bytes()[:1] == b"\x02"
