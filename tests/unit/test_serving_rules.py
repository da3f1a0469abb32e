"""Business rules, popularity, unknown items, no model and live quality, on the recommender alone."""

import dataclasses

import pytest

from schemas.events import EventType
from streamer.worker.engine import Recommender
from streamer.worker.policy import ServingPolicy
from streamer.worker.popularity import StreamPopularity, popular_list
from tests.support.artifacts import N_ITEMS, make_artifact
from tests.support.stream_events import Stream, run


def listed(result) -> list[list[str]]:
    return [[item.item_id for item in rec.items] for rec in result.recommendations()]


@pytest.fixture
def artifact():
    return make_artifact()


def test_items_bought_within_the_window_are_left_out_and_come_back_after_it(artifact):
    policy = ServingPolicy(top_k=N_ITEMS, exclude_bought_s=3600)
    stream = Stream()
    states, [bought] = run(
        Recommender(artifact, policy), [[stream.event("u", 5, t=1000.0, kind=EventType.BUY)]]
    )
    assert "item-5" not in listed(bought)[0] and len(listed(bought)[0]) == N_ITEMS - 1
    later = [stream.event("u", 1, t=2000.0), stream.event("u", 2, t=1000.0 + 3601, session="s")]
    _, [result] = run(
        Recommender(artifact, dataclasses.replace(policy, session_mode="user")), [later], states
    )
    within, after = listed(result)
    assert "item-5" not in within and "item-5" in after
    assert states["u"].bought == ["item-5"] and states["u"].bought_at == [1000.0]


def test_other_users_and_clicks_do_not_hide_an_item(artifact):
    policy = ServingPolicy(top_k=N_ITEMS, exclude_bought_s=3600)
    stream = Stream()
    _, [result] = run(
        Recommender(artifact, policy),
        [[stream.event("u", 5, kind=EventType.BUY), stream.event("v", 1), stream.event("w", 5)]],
    )
    _, for_v, for_w = listed(result)
    assert "item-5" in for_v and "item-5" in for_w


def test_the_items_of_the_session_are_left_out_when_the_policy_says_so(artifact):
    stream = Stream()
    events = [stream.event("u", 1), stream.event("u", 2), stream.event("u", 3)]
    _, [kept] = run(Recommender(artifact, ServingPolicy(top_k=N_ITEMS)), [events])
    assert all(len(items) == N_ITEMS for items in listed(kept))
    policy = ServingPolicy(top_k=N_ITEMS - 2, exclude_session_items=True)
    _, [result] = run(Recommender(artifact, policy), [events])
    first, second, third = listed(result)
    assert "item-1" not in first and not {"item-1", "item-2", "item-3"} & set(third)
    assert [len(first), len(second), len(third)] == [N_ITEMS - 2, N_ITEMS - 2, N_ITEMS - 3]


def test_a_new_user_on_an_unknown_item_gets_the_artifacts_popularity_under_the_rules(artifact):
    popular = [("item-7", 9.0), ("item-2", 5.0), ("brand-new", 3.0), ("item-1", 1.0)]
    artifact = dataclasses.replace(artifact, popular_items=popular)
    policy = ServingPolicy(top_k=3, exclude_current_item=True)
    stream = Stream()
    _, [result] = run(
        Recommender(artifact, policy), [[stream.event("u", "item-2-new"), stream.event("v", 7)]]
    )
    fresh, known = result.recommendations()
    assert fresh.basis == "popularity" and [i.item_id for i in fresh.items] == [
        "item-7",
        "item-2",
        "brand-new",
    ]
    assert known.basis == "model" and result.unknown_items == 1 and result.popularity_lists == 1
    [answer] = Recommender(artifact, ServingPolicy(top_k=3)).recommend([None], 2, exclude=[["item-7"]])
    assert answer.basis == "popularity" and [item for item, _ in answer.items] == ["item-2", "brand-new"]


def test_a_worker_without_a_model_lists_what_its_stream_made_popular_and_a_first_model_takes_over(artifact):
    policy = ServingPolicy(top_k=2)
    no_model = Recommender(None, policy)
    stream = Stream()
    clicks = [stream.event(f"u{n}", item) for n, item in enumerate([3, 3, 3, 8, 8, "new"])]
    states, [result] = run(no_model, [clicks])
    assert no_model.version == "none" and result.popularity_lists == len(clicks)
    assert [i.item_id for i in result.recommendations()[-1].items] == ["item-3", "item-8"]
    _, [after] = run(Recommender(artifact, policy), [[stream.event("u0", 1)]], states)
    [listed_after] = after.recommendations()
    assert listed_after.basis == "model" and after.reencoded == 1
    assert listed_after.model_version == artifact.version


def test_popularity_decays_with_event_time():
    popularity = StreamPopularity(half_life_s=10)
    for _ in range(3):
        popularity.add("old", 0.0)
    popularity.add("new", 20.0)  # worth 4 events at t=0
    popularity.add("new", 20.0)
    assert [item for item, _ in popularity.ranked()] == ["new", "old"]
    assert popular_list(popularity.ranked(), 5, {"new"}, frozenset()) == [("old", pytest.approx(3 / 8))]


def test_live_quality_scores_each_list_against_the_next_event_of_the_session(artifact):
    policy = ServingPolicy(top_k=N_ITEMS // 2)
    stream = Stream()
    events = [
        stream.event("u", 1, session="s1"),
        stream.event("u", 2, session="s1"),
        stream.event("u", 3, session="s1"),
        stream.event("u", 4, session="s2"),
    ]
    _, [result] = run(Recommender(artifact, policy), [events])
    lists = listed(result)
    expected_hits = [nxt in lists[n] for n, nxt in enumerate(["item-2", "item-3"])]
    expected_rr = sum(
        1 / (lists[n].index(nxt) + 1) for n, nxt in enumerate(["item-2", "item-3"]) if expected_hits[n]
    )
    outcomes = result.outcomes
    assert outcomes.predictions == {"v1": 2}  # the new session's first event predicts nothing
    assert outcomes.hits.get("v1", 0) == sum(expected_hits)
    assert outcomes.reciprocal_rank.get("v1", 0.0) == pytest.approx(expected_rr)
