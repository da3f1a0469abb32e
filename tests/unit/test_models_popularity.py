"""Recent item popularity: decayed, typed event counts, most popular first."""

import pytest

from models.popularity import DEFAULT_HALF_LIFE_DAYS, EVENT_TYPE_WEIGHTS, recent_popularity
from schemas.events import EventType

DAY = 86_400.0
NOW = 1_700_000_000.0
CLICK, BUY = EventType.CLICK, EventType.BUY


def popularity(events, **options):
    """``events``: (item, time, type) triples."""
    items, times, types = zip(*events, strict=True) if events else ((), (), ())
    return recent_popularity(items, times, types, **options)


def test_the_newest_click_weighs_one_and_a_click_one_half_life_older_half_as_much():
    half_life = DEFAULT_HALF_LIFE_DAYS * DAY
    assert popularity([("a", NOW, CLICK), ("b", NOW - half_life, CLICK)]) == [("a", 1.0), ("b", 0.5)]


def test_recent_events_outweigh_more_numerous_old_ones():
    old = [("old-favourite", NOW - 2 * DAY, CLICK)] * 50
    recent = [("trending", NOW - 60, CLICK)] * 3
    assert [item for item, _ in popularity(old + recent)] == ["trending", "old-favourite"]


def test_without_decay_the_weights_are_plain_counts():
    events = [("a", NOW - 5 * DAY, CLICK)] * 3 + [("b", NOW, CLICK)] * 2 + [("c", NOW - DAY, CLICK)]
    ranked = popularity(events, half_life_days=1e12)
    assert [item for item, _ in ranked] == ["a", "b", "c"]
    assert [weight for _, weight in ranked] == pytest.approx([3.0, 2.0, 1.0])


def test_a_buy_weighs_more_than_a_click_at_the_same_time():
    ranked = popularity([("viewed", NOW, CLICK), ("bought", NOW, BUY)])
    assert ranked == [("bought", EVENT_TYPE_WEIGHTS[BUY]), ("viewed", 1.0)]
    assert EVENT_TYPE_WEIGHTS[BUY] > EVENT_TYPE_WEIGHTS[CLICK]


def test_the_list_is_cut_at_the_limit_and_equal_weights_are_ordered_by_item_id():
    events = [(item, NOW, CLICK) for item in ("d", "b", "c", "a")] + [("z", NOW, CLICK)] * 2
    assert popularity(events, limit=3) == [("z", 2.0), ("a", 1.0), ("b", 1.0)]


def test_no_events_give_an_empty_list():
    assert popularity([]) == []


@pytest.mark.parametrize(
    ("items", "options"),
    [(["a"], {"half_life_days": 0}), (["a"], {"limit": -1}), (["a", "b"], {})],
)
def test_bad_arguments_are_refused(items, options):
    with pytest.raises(ValueError):
        recent_popularity(items, [NOW], [CLICK], **options)
