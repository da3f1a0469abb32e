"""The retrainer's window, session cutting, training settings, schedule and promotion rule."""

import dataclasses
from types import SimpleNamespace

import pytest

from models.data import events_to_tsv, parse_events
from models.popularity import recent_popularity
from models.train import TrainConfig, train_model
from schemas.events import Event, EventType
from streamer.common.settings import Settings
from streamer.retrainer.cycle import judge, run_cycle, training_config, warm_start_fits
from streamer.retrainer.dataset import session_rows, split_recent
from streamer.retrainer.schedule import crossed_a_tenth, first_model_needs, training_due
from streamer.retrainer.window import EventWindow

TINY = TrainConfig(hidden=8, batch_size=8, n_sample=16, epochs=1)


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
        TrainConfig(hidden=8, n_sample=4, epochs=1, seen_bonus=0.5),
        progress=False,
    )
    current = SimpleNamespace(model=serving.model, config={**serving.config.to_dict(), "preset": "rsc15"})
    kept = training_config(current, 2)  # no preset: the serving model's settings, its seen bonus too
    assert kept.hidden == 8 and kept.seen_bonus == 0.5 and kept.model_config(3).seen_bonus == 0.5
    tuned = TrainConfig(loss="bpr-max", hidden=8, learning_rate=0.07, epochs=9, seen_bonus=1.5)
    config = training_config(current, 2, tuned)
    assert (config.loss, config.learning_rate, config.epochs, config.seen_bonus) == ("bpr-max", 0.07, 2, 1.5)
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


def schedule(**env: str):
    defaults = {"STREAMREC_RETRAIN_EVERY_EVENTS": "50000", "STREAMREC_RETRAIN_EVERY_S": "3600"}
    return Settings.from_env({**defaults, **env}).retrainer


def due(settings, *, serving=False, window=0, new=0, seconds=0.0) -> bool:
    return training_due(
        settings, serving=serving, window_events=window, new_events=new, seconds_since_cycle=seconds
    )


def test_with_no_model_nothing_is_trained_before_the_window_holds_the_first_model_events():
    settings = schedule(STREAMREC_RETRAIN_FIRST_MODEL_EVENTS="10000")
    assert not due(settings, window=9_999, new=9_999, seconds=7200)  # not even on the usual schedule
    assert due(settings, window=10_000, new=10_000)


def test_the_first_model_is_trained_the_moment_the_window_reaches_the_threshold():
    settings = schedule(STREAMREC_RETRAIN_FIRST_MODEL_EVENTS="10000")
    assert due(settings, window=10_050, new=10_050, seconds=1)  # the usual schedule is far off
    never = schedule(STREAMREC_RETRAIN_EVERY_EVENTS="0", STREAMREC_RETRAIN_EVERY_S="0")
    assert due(never, window=10_000, new=10_000)


def test_a_refused_first_candidate_is_retried_on_the_usual_schedule_not_on_every_fetch():
    settings = schedule(STREAMREC_RETRAIN_FIRST_MODEL_EVENTS="10000")
    assert not due(settings, window=10_500, new=500, seconds=60)
    assert not due(settings, window=10_500, new=0, seconds=7200)
    assert due(settings, window=10_500, new=500, seconds=3600)
    assert due(settings, window=60_000, new=50_000, seconds=60)


def test_a_window_smaller_than_the_threshold_trains_the_first_model_once_full():
    settings = schedule(STREAMREC_RETRAIN_FIRST_MODEL_EVENTS="10000", STREAMREC_RETRAIN_WINDOW_EVENTS="500")
    assert first_model_needs(settings) == 500
    assert due(settings, window=500, new=700)  # more added than kept: the window trimmed the oldest


def test_with_a_model_serving_only_the_usual_schedule_counts():
    settings = schedule(STREAMREC_RETRAIN_FIRST_MODEL_EVENTS="10000", STREAMREC_RETRAIN_EVERY_EVENTS="100")
    assert due(settings, serving=True, window=150, new=100)
    assert not due(settings, serving=True, window=10_000, new=99, seconds=60)


@pytest.mark.parametrize(
    ("before", "after", "logged"),
    [
        (0, 999, False),
        (999, 1_000, True),
        (1_000, 1_999, False),
        (1_500, 3_100, True),
        (10_000, 12_000, False),
    ],
)
def test_progress_towards_the_first_model_is_logged_at_each_tenth(before, after, logged):
    assert crossed_a_tenth(before, after, needed=10_000) is logged


@pytest.mark.parametrize("recall", [0.0, float("nan")])
def test_a_candidate_that_measures_nothing_is_refused_even_as_the_first_model(recall):
    for current in (None, {"recall@20": 0.0}):
        promote, reason = judge({"recall@20": recall}, current, margin=1.0)
        assert not promote and "recall@20" in reason


def sessions(n_users: int, length: int, start: float = 1_700_000_000.0) -> list[Event]:
    """Each user walks the 12 items in steps of their own; one session per user, in user order."""
    return [
        Event(f"u{u}-{k}", f"u{u}", f"i{(u + k * (1 + u % 5)) % 12}", start + 60 * u + k, EventType.CLICK)
        for u in range(n_users)
        for k in range(length)
    ]


def test_the_first_candidate_is_promoted_with_the_popularity_of_the_whole_window():
    events = sessions(60, 6)
    candidate = run_cycle(events, None, Settings.from_env({}), TINY)
    assert candidate.decision.promote, candidate.decision.reason
    assert candidate.decision.current is None and candidate.decision.candidate["recall@20"] > 0
    assert candidate.popular_items == recent_popularity(
        [e.item_id for e in events], [e.event_time for e in events], [e.event_type for e in events]
    )
    assert len(candidate.popular_items) == 12


def test_a_first_candidate_whose_held_out_sessions_predict_nothing_is_refused():
    single_events = sessions(10, 1, start=1_800_000_000.0)  # the most recent sessions: one event each
    candidate = run_cycle(sessions(60, 6) + single_events, None, Settings.from_env({}), TINY)
    assert not candidate.decision.promote and "nothing learned" in candidate.decision.reason


def test_a_training_that_fails_is_refused_instead_of_stopping_the_retrainer():
    events = sessions(40, 1)  # no session has two events: nothing to train on
    candidate = run_cycle(events, None, Settings.from_env({}), TINY)
    assert candidate.result is None and not candidate.decision.promote
    assert candidate.decision.reason.startswith("training failed")
