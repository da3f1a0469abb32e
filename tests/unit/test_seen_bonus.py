"""The seen bonus: both scorers add it once to each item of a row's session (decayed by the events since
the item's latest), before the masks and the cut, and list what scoring every item with it lists;
evaluation ranks with it."""

import dataclasses

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.ann import AnnParams, AnnScorer
from models.contract import ItemTable
from models.data import build_vocabulary, read_events
from models.evaluate import evaluate_model, evaluate_seen_bonuses, pessimistic_ranks, ranks_with_bonuses
from models.model import GRU4Rec, ModelConfig
from models.scoring import ExactScorer, add_seen_bonus_, latest_seen
from models.synthetic import write_synthetic_sessions
from tests.unit.test_scorer_masks import DIM, assert_lists_honour_the_masks


def scores_with_bonus(items: ItemTable, q: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Every item scored the slow, obvious way: q · v + b, plus once per distinct seen item the bonus
    times the decay to the power of the events since its latest (the last column is the latest)."""
    scores = q @ items.vectors.T + items.bias
    for row in range(len(q)):
        ages = {item: seen.shape[1] - 1 - column for column, item in enumerate(seen[row].tolist())}
        for item, age in ages.items():
            if item != -1:
                scores[row, item] += items.seen_bonus * items.seen_decay**age
    return scores


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_items=st.integers(1, 300),
    n_rows=st.integers(1, 30),
    k=st.integers(1, 30),
    seen_width=st.integers(0, 40),
    exclude_width=st.integers(0, 10),
    bonus=st.sampled_from([-2.0, 0.5, 1.0, 5.0]),
    decay=st.sampled_from([1.0, 0.9, 0.5]),
    unavailable_share=st.sampled_from([0.0, 0.2, 1.0]),
)
def test_both_scorers_list_the_top_k_of_the_scores_with_the_bonus_and_honour_the_masks(
    seed, n_items, n_rows, k, seen_width, exclude_width, bonus, decay, unavailable_share
):
    g = torch.Generator().manual_seed(seed)
    vectors, bias = torch.randn(n_items, DIM, generator=g), torch.randn(n_items, generator=g)
    items = ItemTable(vectors, bias, bonus, decay)
    q = torch.randn(n_rows, DIM, generator=g)
    seen = torch.randint(-1, n_items, (n_rows, seen_width), generator=g)  # repeats and padding
    exclude = torch.randint(-1, n_items, (n_rows, exclude_width), generator=g)
    unavailable = torch.nonzero(torch.rand(n_items, generator=g) < unavailable_share).squeeze(1)
    k = min(k, n_items)
    expected = scores_with_bonus(items, q, seen)
    expected[:, unavailable] = float("-inf")
    rows, columns = torch.nonzero(exclude >= 0, as_tuple=True)
    expected[rows, exclude[rows, columns]] = float("-inf")
    best = expected.topk(k, dim=1).values
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams(candidates=16))):
        scores, top = scorer.top_k(q, k, exclude, unavailable, seen)
        assert_lists_honour_the_masks(scores, top, k, n_items, exclude, unavailable)
        torch.testing.assert_close(scores, best, rtol=0, atol=1e-5)
        listed = top >= 0
        torch.testing.assert_close(
            expected.gather(1, top.clamp(min=0))[listed], scores[listed], rtol=0, atol=1e-5
        )


def test_a_large_bonus_lists_the_session_items_first_and_none_twice():
    g = torch.Generator().manual_seed(1)
    items = ItemTable(torch.randn(5000, DIM, generator=g), torch.randn(5000, generator=g), 100.0)
    q = torch.randn(3, DIM, generator=g)
    worst = (q @ items.vectors.T + items.bias).argsort(1)[:, :3]  # what the index would never find
    seen = torch.cat([worst, worst[:, :1]], 1)
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams())):
        _, top = scorer.top_k(q, 10, seen=seen)
        for row in range(3):
            assert set(top[row, :3].tolist()) == set(worst[row].tolist())
            assert len(set(top[row].tolist())) == 10


def test_a_decaying_bonus_ranks_the_latest_of_equally_scored_seen_items_first():
    items = ItemTable(torch.zeros(50, DIM), torch.zeros(50), seen_bonus=1.0, seen_decay=0.5)
    seen = torch.tensor([[-1, -1, 7, 3, 7, 9], [4, 5, 6, 4, -1, 8]])  # oldest first, right-aligned
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams())):
        scores, top = scorer.top_k(torch.zeros(2, DIM), 4, seen=seen)
        assert top[0, :3].tolist() == [9, 7, 3] and scores[0, :3].tolist() == [1.0, 0.5, 0.25]
        assert top[1, :4].tolist() == [8, 4, 6, 5]  # the -1 (an unknown item) still counts as an event
    items, ages = latest_seen(seen)
    assert sorted(zip(items[0].tolist(), ages[0].tolist(), strict=True))[-3:] == [(3, 2), (7, 1), (9, 0)]


def test_without_a_bonus_the_seen_items_change_nothing():
    g = torch.Generator().manual_seed(2)
    items = ItemTable(torch.randn(400, DIM, generator=g), torch.randn(400, generator=g))
    q = torch.randn(4, DIM, generator=g)
    seen = torch.randint(0, 400, (4, 7), generator=g)
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams())):
        assert torch.equal(scorer.top_k(q, 20, seen=seen)[1], scorer.top_k(q, 20)[1])


def test_evaluation_ranks_with_the_models_bonus_and_a_grid_gives_each_bonus_its_own_metrics(tmp_path):
    log = read_events(write_synthetic_sessions(tmp_path / "s.tsv", n_items=60, n_sessions=80, seed=4))
    item_ids = build_vocabulary(log)
    model = GRU4Rec(ModelConfig(n_items=len(item_ids), hidden=16), torch.Generator().manual_seed(0)).eval()
    plain, boosted, decayed = evaluate_seen_bonuses(
        model, item_ids, log, [(0.0, 1.0), (50.0, 1.0), (3.0, 0.5)], [1, 20]
    )
    assert plain == evaluate_model(model, item_ids, log, [1, 20])
    model.config = dataclasses.replace(model.config, seen_bonus=3.0, seen_decay=0.5)
    assert decayed == evaluate_model(model, item_ids, log, [1, 20])
    model.config = dataclasses.replace(model.config, seen_bonus=50.0, seen_decay=1.0)
    assert boosted == evaluate_model(model, item_ids, log, [1, 20])
    assert boosted != plain and decayed not in (plain, boosted)
    exact = evaluate_model(model, item_ids, log, [20], scorer=ExactScorer(model.item_table()))
    assert exact["recall@20"] == boosted["recall@20"] and exact["overlap@20"] == 1.0


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_items=st.integers(1, 60),
    n_rows=st.integers(1, 20),
    width=st.integers(0, 12),
    bonuses=st.lists(
        st.tuples(st.sampled_from([-1.0, 0.0, 0.25, 1.0, 3.0]), st.sampled_from([1.0, 0.5])),
        min_size=1,
        max_size=5,
    ),
)
def test_ranks_under_many_bonuses_equal_ranking_each_bonus_added_to_the_scores(
    seed, n_items, n_rows, width, bonuses
):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(-3, 4, (n_rows, n_items), generator=g).float() / 4  # many ties, bonus-sized steps
    targets = torch.randint(0, n_items, (n_rows,), generator=g)
    seen = torch.randint(-1, n_items, (n_rows, width), generator=g)
    if width:  # half the rows have their target among their seen items
        seen[: n_rows // 2, 0] = targets[: n_rows // 2]
    for (bonus, decay), ranks in zip(
        bonuses, ranks_with_bonuses(scores, targets, seen, bonuses), strict=True
    ):
        expected = pessimistic_ranks(add_seen_bonus_(scores.clone(), seen, bonus, decay), targets)
        assert torch.equal(ranks, expected), (bonus, decay)
