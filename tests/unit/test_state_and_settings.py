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
