"""The micro-batch engine: ordering, exactly-once application, sessions, re-encoding, scoring."""

import dataclasses
import json
import random
import re

import numpy as np
import pytest
import torch

from models.ann import AnnParams
from models.artifact import ModelArtifact
from models.scorer_choice import ScorerChoice
from models.scoring import exact_top_k
from schemas.events import Event, EventType
from streamer.worker.engine import Recommender
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord, ParsedEvent
from tests.support.artifacts import N_ITEMS, make_artifact
from tests.support.stream_events import Stream, run


def encode(artifact: ModelArtifact, items: list[int], types: list[int] | None = None) -> np.ndarray:
    types = types or [0] * len(items)
    return artifact.model.encode(torch.tensor(items), torch.tensor(types)).numpy()


@pytest.fixture
def artifact() -> ModelArtifact:
    return make_artifact()


def test_state_after_events_equals_the_forward_pass_whatever_the_batching(artifact):
    stream = Stream()
    items = [3, 7, 7, 1, 30, 2]
    events = [stream.event("u", i, kind=EventType.BUY if i == 30 else EventType.CLICK) for i in items]
    others = [stream.event(f"other-{n}", n) for n in range(5)]
    expected = encode(artifact, items, [1 if i == 30 else 0 for i in items])
    for batches in ([events + others], [[e] for e in events], [events[:2] + others, events[2:]]):
        states, _ = run(Recommender(artifact, ServingPolicy()), batches)
        np.testing.assert_allclose(states["u"].hidden, expected, atol=1e-6, rtol=0)
        assert states["u"].recent_items == [f"item-{i}" for i in items]


def test_one_list_per_event_in_order_with_k_items_scored_from_the_new_state(artifact):
    stream = Stream()
    batch = [stream.event("a", 1), stream.event("b", 2), stream.event("a", 3)]
    _, [result] = run(Recommender(artifact, ServingPolicy(top_k=5)), [batch])
    # Wave by wave: the first event of every user, then the second ones.
    assert [r.event_id for r in result.recommendations()] == ["e0", "e1", "e2"]
    by_event = {r.event_id: r for r in result.recommendations()}
    hidden = torch.from_numpy(encode(artifact, [1, 3])).unsqueeze(0)
    scores, top = exact_top_k(artifact.model, hidden, 5)
    assert [i.item_id for i in by_event["e2"].items] == [f"item-{i}" for i in top[0].tolist()]
    assert [i.score for i in by_event["e2"].items] == pytest.approx(scores[0].tolist(), abs=1e-6)
    assert all(len(r.items) == 5 and r.model_version == "v1" for r in result.recommendations())


def test_a_redelivered_event_is_not_applied_twice(artifact):
    stream = Stream()
    events = [stream.event("u", i) for i in (4, 5, 6)]
    recommender = Recommender(artifact, ServingPolicy())
    states, _ = run(recommender, [events])
    # The whole batch arrives again (a crash after the state write, before the offset commit).
    again, [second] = run(recommender, [events], states)
    assert second.duplicates == 3 and second.recommendations() == [] and second.states == {}
    np.testing.assert_array_equal(again["u"].hidden, states["u"].hidden)


def test_replaying_a_batch_from_the_old_state_sends_identical_lists(artifact):
    stream = Stream()
    events = [stream.event(f"u{n % 3}", n) for n in range(9)]
    recommender = Recommender(artifact, ServingPolicy())
    _, [first] = run(recommender, [events])
    _, [second] = run(recommender, [events])  # a crash before the state write: same old states

    def content(r):
        return (r.event_id, r.items, r.model_version, r.source)

    assert [content(r) for r in first.recommendations()] == [content(r) for r in second.recommendations()]


def test_events_from_other_input_partitions_are_applied_not_taken_for_redeliveries(artifact):
    def on(partition: int, offset: int, item: int):
        record = InputRecord("click", partition, offset, None, b"")
        return ParsedEvent(Event(f"p{partition}-{offset}", "u", f"item-{item}", 1000.0), record)

    # A CRC32 or null-keyed producer put the user's events on partitions 2 and 0.
    events = [on(2, 50, 4), on(0, 7, 5), on(2, 51, 6)]
    states, [result] = run(Recommender(artifact, ServingPolicy()), [events])
    assert result.duplicates == 0 and len(result.lists) == 3
    assert states["u"].recent_items == ["item-4", "item-5", "item-6"]


def test_an_event_sent_twice_gets_the_same_list_again_and_moves_the_state_once(artifact):
    stream = Stream()
    first = stream.event("u", 4, event_id="retry-me")
    again = stream.event("u", 4, event_id="retry-me")  # an application-level retry: a new offset
    for batches in ([[first, again]], [[first], [again]]):
        states, results = run(Recommender(artifact, ServingPolicy()), batches)
        lists = [r for result in results for r in result.recommendations()]
        assert len(lists) == 2 and lists[0].items == lists[1].items
        assert sum(result.repeats for result in results) == 1
        assert states["u"].events_seen == 1
        np.testing.assert_allclose(states["u"].hidden, encode(artifact, [4]), atol=1e-6)


def lists_without_produced_at(results) -> dict[str, bytes]:
    """Each event's list bytes, ``produced_at`` (the one field a recomputation may change) cut out."""
    return {
        json.loads(value)["event_id"]: re.sub(rb'"produced_at":[^,]*,', b"", value)
        for result in results
        for _, value in result.lists
    }


def merged_at_random(events: list, others: list, rng: random.Random) -> list:
    """``events`` and ``others`` interleaved at random, each kept in its own order."""
    slots = set(rng.sample(range(len(events) + len(others)), len(others)))
    ours, theirs = iter(events), iter(others)
    return [next(theirs) if n in slots else next(ours) for n in range(len(events) + len(others))]


def test_lists_and_states_are_the_same_bits_whatever_the_micro_batching(artifact):
    rng = random.Random(5)
    stream = Stream()
    kinds = [EventType.CLICK] * 4 + [EventType.BUY]

    def random_events(users: str, n: int) -> list[ParsedEvent]:
        return [
            stream.event(f"{users}{rng.randrange(40)}", rng.randrange(N_ITEMS), kind=rng.choice(kinds))
            for _ in range(n)
        ]

    events = random_events("u", 160)  # 40 users, ~4 events each, interleaved: waves of 1 to 40 rows
    among_others = merged_at_random(events, random_events("other", 80), rng)
    cuts = sorted(rng.sample(range(1, len(events)), 6))
    batchings = {
        "one event per batch": [[e] for e in events],
        "one batch": [events],
        "batches of 7": [events[i : i + 7] for i in range(0, len(events), 7)],
        "uneven batches": [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)],
        "among other users' events": [among_others[i : i + 60] for i in range(0, len(among_others), 60)],
    }
    outcomes = {name: run(Recommender(artifact, ServingPolicy()), b) for name, b in batchings.items()}

    expected_states, expected_results = outcomes.pop("one event per batch")
    expected_lists = lists_without_produced_at(expected_results)
    assert len(expected_lists) == len(events)
    for name, (states, results) in outcomes.items():
        lists = lists_without_produced_at(results)
        assert {event_id: lists[event_id] for event_id in expected_lists} == expected_lists, name
        for user, expected in expected_states.items():
            assert states[user].hidden.tobytes() == expected.hidden.tobytes(), (name, user)


def test_reencoding_gives_a_history_the_same_bits_alone_or_among_others(artifact):
    rng = random.Random(6)
    lengths = [rng.randrange(1, 30) for _ in range(70)]  # re-encoded in shrinking prefixes: 70 rows to 1
    histories = [
        ([f"item-{rng.randrange(N_ITEMS)}" for _ in range(n)], [rng.randrange(2) for _ in range(n)])
        for n in lengths
    ]
    recommender = Recommender(artifact, ServingPolicy())
    together = recommender.reencode_many(histories)
    for history, hidden in zip(histories, together, strict=True):
        [alone] = recommender.reencode_many([history])
        assert alone.tobytes() == hidden.tobytes()


def test_an_unknown_item_gets_a_list_from_the_unchanged_state_and_joins_the_recent_items(artifact):
    stream = Stream()
    states, [result] = run(
        Recommender(artifact, ServingPolicy()), [[stream.event("u", 1), stream.event("u", "new")]]
    )
    assert result.dead_letters == [] and result.unknown_items == 1
    first, second = result.recommendations()
    assert second.items == first.items and second.basis == "model"
    np.testing.assert_allclose(states["u"].hidden, encode(artifact, [1]), atol=1e-6)
    assert states["u"].recent_items == ["item-1", "new"]


def test_a_gap_longer_than_the_session_gap_starts_from_zero(artifact):
    stream = Stream()
    events = [stream.event("u", 1, t=0.0), stream.event("u", 2, t=100.0), stream.event("u", 3, t=5000.0)]
    states, results = run(Recommender(artifact, ServingPolicy(session_gap_s=1800)), [events])
    np.testing.assert_allclose(states["u"].hidden, encode(artifact, [3]), atol=1e-6)
    assert results[0].new_sessions == 1 and states["u"].recent_items == ["item-3"]


def test_a_new_session_id_starts_from_zero_and_user_mode_carries_over(artifact):
    stream = Stream()
    events = [stream.event("u", 1, session="s1"), stream.event("u", 2, session="s2")]
    states, _ = run(Recommender(artifact, ServingPolicy(session_mode="session")), [events])
    np.testing.assert_allclose(states["u"].hidden, encode(artifact, [2]), atol=1e-6)
    states, _ = run(Recommender(artifact, ServingPolicy(session_mode="user")), [events])
    np.testing.assert_allclose(states["u"].hidden, encode(artifact, [1, 2]), atol=1e-6)


def test_a_state_from_another_model_is_reencoded_from_recent_items(artifact):
    stream = Stream()
    states, _ = run(Recommender(artifact, ServingPolicy()), [[stream.event("u", i) for i in (1, 2, 39)]])
    smaller = make_artifact(seed=1, n_items=30, version="v2")  # item-39 is gone from the vocabulary
    new = Recommender(smaller, ServingPolicy())
    states2, [result] = run(new, [[stream.event("u", 5)]], states)
    assert result.reencoded == 1
    assert states2["u"].model_version == "v2"
    np.testing.assert_allclose(states2["u"].hidden, encode(smaller, [1, 2, 5]), atol=1e-6)


def test_exclude_current_item_leaves_it_out(artifact):
    stream = Stream()
    _, [result] = run(
        Recommender(artifact, ServingPolicy(top_k=N_ITEMS, exclude_current_item=True)),
        [[stream.event("u", 9)]],
    )
    listed = [i.item_id for i in result.recommendations()[0].items]
    assert "item-9" not in listed and len(listed) == N_ITEMS - 1


def test_recommend_lists_stored_states_as_the_stream_did_without_changing_them(artifact):
    stream = Stream()
    states, [result] = run(Recommender(artifact, ServingPolicy(top_k=5)), [[stream.event("u", 4)]])
    stored = states["u"].to_bytes()
    [listed] = Recommender(artifact, ServingPolicy()).recommend([states["u"]], 5)
    [streamed] = result.recommendations()
    assert listed.basis == "model" and listed.model_version == streamed.model_version
    assert [item for item, _ in listed.items] == [i.item_id for i in streamed.items]
    assert [score for _, score in listed.items] == pytest.approx([i.score for i in streamed.items], abs=1e-6)
    assert states["u"].to_bytes() == stored


def test_recommend_re_encodes_another_models_state_and_honours_exclusions(artifact):
    stream = Stream()
    states, _ = run(Recommender(artifact, ServingPolicy()), [[stream.event("u", 4), stream.event("u", 9)]])
    other = Recommender(make_artifact(seed=3, version="v2"), ServingPolicy())
    [best, *_] = other.recommend([states["u"], None], 3)
    expected = other.advancer.reencode_many([(["item-4", "item-9"], [0, 0])])[0]
    _, top = exact_top_k(other.artifact.model, torch.from_numpy(expected).unsqueeze(0), 3)
    assert [item for item, _ in best.items] == [f"item-{i}" for i in top[0].tolist()]
    [kept, fresh] = other.recommend([states["u"], None], 3, exclude=[[best.items[0][0]], []])
    assert best.items[0][0] not in [item for item, _ in kept.items] and len(kept.items) == 3
    assert fresh.basis == "popularity"  # a new user
    assert states["u"].model_version == "v1"


def test_the_approximate_scorer_serves_the_stream_with_k_items_and_the_current_item_left_out(artifact):
    ann = ScorerChoice(kind="ann", ann=AnnParams(candidates=8, nprobe=1))
    policy = ServingPolicy(top_k=10, exclude_current_item=True, scorer=ann)
    stream = Stream()
    batch = [stream.event("a", 1), stream.event("b", 2), stream.event("a", 3)]
    _, [approximate] = run(Recommender(artifact, policy), [batch])
    exact_policy = ServingPolicy(top_k=10, exclude_current_item=True, scorer=ScorerChoice(kind="exact"))
    _, [exact] = run(Recommender(artifact, exact_policy), [batch])
    for listed, expected, event in zip(
        approximate.recommendations(), exact.recommendations(), batch, strict=True
    ):
        assert [i.item_id for i in listed.items] == [i.item_id for i in expected.items]
        assert len(listed.items) == 10 and event.event.item_id not in {i.item_id for i in listed.items}


@pytest.mark.parametrize("scorer", ["exact", "ann"])
def test_a_models_seen_bonus_ranks_the_sessions_items_in_the_stream_and_the_api_alike(artifact, scorer):
    artifact.model.config = dataclasses.replace(artifact.model.config, seen_bonus=1000.0)
    policy = ServingPolicy(top_k=5, scorer=ScorerChoice(kind=scorer, ann=AnnParams(candidates=8, nprobe=1)))
    stream = Stream()
    states, [result] = run(Recommender(artifact, policy), [[stream.event("u", i) for i in (4, 9, 4, 17)]])
    streamed = [i.item_id for i in result.recommendations()[-1].items]
    assert set(streamed[:3]) == {"item-4", "item-9", "item-17"} and len(streamed) == 5
    [answer] = Recommender(artifact, policy).recommend([states["u"]], 5)
    assert [item for item, _ in answer.items] == streamed
    # Decayed by the events since each item's latest: the latest first, then item-4, seen one event before.
    artifact.model.config = dataclasses.replace(artifact.model.config, seen_decay=0.5)
    [answer] = Recommender(artifact, policy).recommend([states["u"]], 5)
    assert [item for item, _ in answer.items][:3] == ["item-17", "item-4", "item-9"]
    artifact.model.config = dataclasses.replace(artifact.model.config, seen_decay=1.0)
    [answer] = Recommender(artifact, policy).recommend([states["u"]], 5)
    assert [item for item, _ in answer.items] == streamed
    hidden = torch.from_numpy(states["u"].hidden).unsqueeze(0)
    scores = artifact.model.scores(hidden)[0]
    assert answer.items[0][1] == pytest.approx(
        float(scores[artifact.item_index[streamed[0]]]) + 1000.0, abs=1e-3
    )
