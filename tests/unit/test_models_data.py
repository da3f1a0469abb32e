"""Event files, vocabularies and the session-parallel batch plan."""

import hashlib

import numpy as np
import pytest

from models.data import (
    build_vocabulary,
    encode_sessions,
    events_to_tsv,
    parse_events,
    session_parallel_schedule,
    split_last_sessions,
)
from models.event_files import DataError
from schemas.events import EventType


def test_sessions_are_ordered_by_start_time_and_events_by_time():
    data = b"ItemId\tTime\tSessionId\nb\t30\tlate\na\t10\tearly\nc\t5\tlate\nd\t20\tearly\n"
    log = parse_events(data)
    assert log.offsets.tolist() == [0, 2, 4]
    assert log.items.tolist() == ["c", "b", "a", "d"]  # "late" starts at t=5, before "early"
    assert log.event_types.tolist() == [EventType.CLICK] * 4
    assert log.fingerprint == hashlib.sha256(data).hexdigest()


def test_event_type_column_is_read_by_name():
    rows = [("s", "i1", 1.0, "click"), ("s", "i2", 2.0, "buy"), ("s", "i3", 3.0, "Cart")]
    log = parse_events(events_to_tsv(rows))
    assert log.event_types.tolist() == [EventType.CLICK, EventType.BUY, EventType.CART]
    assert encode_sessions(log, {"i1": 0, "i2": 1, "i3": 2}).has_event_types


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"SessionId\tItemId\n1\t2\n", "lacks"),
        (b"SessionId\tItemId\tTime\n1\t2\tnoon\n", "line 2"),
        (b"SessionId\tItemId\tTime\n1\t2\n", "line 2"),
        (b"SessionId\tItemId\tTime\tEventType\n1\t2\t3\trefund\n", "EventType"),
    ],
)
def test_malformed_files_are_refused_with_the_line(data, message):
    with pytest.raises(DataError, match=message):
        parse_events(data)


def test_vocabulary_extends_a_base_in_order_of_first_appearance():
    log = parse_events(
        events_to_tsv([("s", "x", 1.0, "click"), ("s", "y", 2.0, "click"), ("t", "x", 3.0, "click")])
    )
    assert build_vocabulary(log) == ["x", "y"]
    assert build_vocabulary(log, base=["y", "old"]) == ["y", "old", "x"]


def test_unknown_items_are_dropped_and_sessions_shrink():
    rows = [
        ("a", "1", 1.0, "click"),
        ("a", "?", 2.0, "click"),
        ("a", "2", 3.0, "buy"),
        ("b", "?", 4.0, "click"),
    ]
    sessions = encode_sessions(parse_events(events_to_tsv(rows)), {"1": 0, "2": 1})
    assert sessions.offsets.tolist() == [0, 2, 2]
    assert sessions.items.tolist() == [0, 1]
    assert sessions.event_types.tolist() == [EventType.CLICK, EventType.BUY]


def test_schedule_of_a_small_case():
    # Sessions of 3, 2, 4, 1 and 2 events: 2, 1, 3, 0 and 1 predictions.
    schedule = session_parallel_schedule(np.array([0, 3, 5, 9, 10, 12]), batch_size=2)
    # Row order: the row busy longest comes first.
    assert schedule.inputs.T.tolist() == [[3, 5, 6, 7], [0, 1, 10, -1]]
    assert schedule.resets.T.astype(int).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]
    assert schedule.n_active.tolist() == [2, 2, 2, 1]


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50])
def test_schedule_predicts_every_event_once_in_order(batch_size):
    lengths = np.random.default_rng(batch_size).integers(1, 9, size=40)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    schedule = session_parallel_schedule(offsets, batch_size)
    session_of = np.repeat(np.arange(len(lengths)), lengths)
    predicted = []
    for t in range(schedule.n_steps):
        n = schedule.n_active[t]
        assert (schedule.inputs[t, :n] >= 0).all() and (schedule.inputs[t, n:] == -1).all()
        predicted += schedule.inputs[t, :n].tolist()
        if t == 0:
            continue
        for row in range(n):
            now, before = schedule.inputs[t, row], schedule.inputs[t - 1, row]
            same_session = session_of[now] == session_of[before]
            assert schedule.resets[t, row] == (not same_session)
            if same_session:
                assert now == before + 1
    last_events = offsets[1:] - 1
    assert sorted(predicted) == [p for p in range(offsets[-1]) if p not in set(last_events)]


def test_the_validation_split_holds_out_the_sessions_that_start_last():
    rows = [
        (s, f"i{s}{k}", float(t + k), "click") for s, t in (("a", 30), ("b", 10), ("c", 20)) for k in range(2)
    ]
    log = parse_events(events_to_tsv(rows))
    earlier, last = split_last_sessions(log, 0.3)
    assert earlier.n_sessions == 2 and earlier.items.tolist() == ["ib0", "ib1", "ic0", "ic1"]
    assert last.offsets.tolist() == [0, 2] and last.items.tolist() == ["ia0", "ia1"]
    assert len({log.fingerprint, earlier.fingerprint, last.fingerprint}) == 3
    with pytest.raises(ValueError, match="too few"):
        split_last_sessions(last, 0.5)  # one session
