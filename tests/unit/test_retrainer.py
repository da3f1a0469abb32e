"""The retrainer's window, session cutting, training settings and promotion rule."""

import dataclasses
from types import SimpleNamespace

import pytest

from models.data import events_to_tsv, parse_events
from models.train import TrainConfig, train_model
from schemas.events import Event, EventType
from streamer.retrainer.cycle import judge, training_config, warm_start_fits
from streamer.retrainer.dataset import session_rows, split_recent
from streamer.retrainer.window import EventWindow


def record(n: int, t: float | None = None, kind=EventType.CLICK):
    return (
        Event(f"e{n}", f"u{n % 3}", f"i{n % 7}", 1_600_000_000.0 + (n if t is None else t), kind),
        "click",
        0,
        n,
    )


def test_window_keeps_the_newest_events_and_survives_a_restart(tmp_path):
    window = EventWindow(tmp_path, max_events=5)
    window.add([record(n) for n in range(4)], {("click", 0): 4})
    window.add([record(n) for n in range(8)], {("click", 0): 8})  # 0..3 again: a redelivery
    assert [e.event_id for e in window.events()] == ["e3", "e4", "e5", "e6", "e7"]
    assert window.events_since_training() == 8
    window.close()

    reopened = EventWindow(tmp_path, max_events=5)
    assert reopened.count == 5
    assert reopened.positions() == {("click", 0): 8}
    reopened.mark_trained()
    assert reopened.events_since_training() == 0


def test_window_orders_by_event_time_and_keeps_event_types(tmp_path):
    window = EventWindow(tmp_path, max_events=10)
    window.add([record(1, t=50, kind=EventType.BUY), record(2, t=10)], {("click", 0): 3})
    events = window.events()
    assert [e.event_id for e in events] == ["e2", "e1"]
    assert events[1].event_type is EventType.BUY


def test_sessions_are_cut_like_the_streamer_cuts_them():
    events = [
        Event("a", "u", "i1", 0.0, session_id="s1"),
        Event("b", "u", "i2", 10.0, session_id="s1"),
        Event("c", "u", "i3", 20.0, session_id="s2"),  # new session id
        Event("d", "v", "i1", 0.0),
        Event("e", "v", "i2", 5000.0),  # gap
    ]
    sessions = session_rows(events, mode="session", gap_s=1800)
    assert sorted([row[1] for row in s] for s in sessions) == [["i1"], ["i1", "i2"], ["i2"], ["i3"]]
    assert len(session_rows(events, mode="user", gap_s=1800)) == 2


def test_the_most_recent_sessions_are_held_out():
    events = [Event(f"e{n}", f"u{n}", "i1" if n % 2 else "i2", float(n)) for n in range(10)]
    train, held_out = split_recent(session_rows(events, "session", 1800), holdout=0.2)
    assert (train.n_sessions, held_out.n_sessions) == (8, 2)


@pytest.mark.parametrize(
    ("candidate", "current", "promote"),
    [(0.50, 0.50, True), (0.496, 0.50, True), (0.49, 0.50, False), (0.60, 0.50, True)],
)
def test_a_candidate_is_promoted_unless_worse_by_more_than_the_margin(candidate, current, promote):
    decided, reason = judge({"recall@20": candidate}, {"recall@20": current}, margin=0.005)
    assert decided is promote and "recall@20" in reason


def test_the_first_candidate_is_promoted_when_nothing_serves():
    assert judge({"recall@20": 0.1}, None, margin=0.0)[0]


def test_a_preset_sets_the_training_config_and_warm_starts_only_a_model_it_fits():
    serving = train_model(
        parse_events(events_to_tsv([("s", "a", 1.0, "click"), ("s", "b", 2.0, "click")])),
        TrainConfig(hidden=8, n_sample=4, epochs=1),
        progress=False,
    )
    current = SimpleNamespace(model=serving.model, config={**serving.config.to_dict(), "preset": "rsc15"})
    assert training_config(current, 2).hidden == 8  # no preset: the serving model's settings
    tuned = TrainConfig(loss="bpr-max", hidden=8, learning_rate=0.07, epochs=9)
    config = training_config(current, 2, tuned)
    assert (config.loss, config.learning_rate, config.epochs) == ("bpr-max", 0.07, 2)
    assert warm_start_fits(current, config)
    assert not warm_start_fits(current, training_config(current, 2, dataclasses.replace(tuned, hidden=16)))


def test_a_bad_preset_file_stops_the_retrainer_at_start_naming_the_setting(tmp_path):
    from streamer.common.settings import ConfigError, Settings
    from streamer.retrainer.cli import training_preset

    assert training_preset(Settings.from_env({})) is None
    bad = tmp_path / "preset.json"
    bad.write_text("{not json")
    for path in (bad, tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match="STREAMREC_RETRAIN_PRESET_FILE"):
            training_preset(Settings.from_env({"STREAMREC_RETRAIN_PRESET_FILE": str(path)}))
