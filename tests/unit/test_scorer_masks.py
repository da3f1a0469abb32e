"""Exclusions per row and unavailable items for every row, in both scorers: never listed, left out
before the cut (k items whenever the catalog has them), -inf and -1 for the entries a row cannot
fill, and the approximate lists equal to the exact ones where the index is searched whole."""

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.ann import AnnParams, AnnScorer
from models.contract import ItemTable
from models.scoring import ExactScorer
from tests.unit.test_ann import clustered_catalog, queries

DIM = 8


def random_case(seed: int, n_items: int, n_rows: int, width: int, unavailable_share: float):
    g = torch.Generator().manual_seed(seed)
    items = ItemTable(torch.randn(n_items, DIM, generator=g), torch.randn(n_items, generator=g))
    q = torch.randn(n_rows, DIM, generator=g)
    exclude = torch.randint(-1, n_items, (n_rows, width), generator=g)  # -1: padding
    unavailable = torch.nonzero(torch.rand(n_items, generator=g) < unavailable_share).squeeze(1)
    return items, q, exclude, unavailable


def assert_lists_honour_the_masks(scores, top, k, n_items, exclude, unavailable):
    forbidden = torch.zeros(len(top), n_items, dtype=torch.bool)
    forbidden[:, unavailable] = True
    rows, columns = torch.nonzero(exclude >= 0, as_tuple=True)
    forbidden[rows, exclude[rows, columns]] = True
    listed = torch.isfinite(scores)
    for row in range(len(top)):
        kept = top[row][listed[row]]
        assert len(kept) == min(k, int((~forbidden[row]).sum()))
        assert len(set(kept.tolist())) == len(kept)
        assert not forbidden[row, kept].any()
        assert (top[row][~listed[row]] == -1).all() and (scores[row][~listed[row]] == float("-inf")).all()
        assert listed[row, : len(kept)].all()  # the unfilled entries come last


@settings(max_examples=60, deadline=None)
@example(seed=131071, n_items=76, n_rows=15, k=28, width=32, unavailable_share=0.0)
@given(
    seed=st.integers(0, 2**31),
    n_items=st.integers(1, 300),
    n_rows=st.integers(1, 40),
    k=st.integers(1, 40),
    width=st.integers(0, 60),
    unavailable_share=st.sampled_from([0.0, 0.1, 0.5, 0.95, 1.0]),
)
def test_no_list_holds_an_excluded_or_unavailable_item_and_each_holds_k_when_it_can(
    seed, n_items, n_rows, k, width, unavailable_share
):
    items, q, exclude, unavailable = random_case(seed, n_items, n_rows, width, unavailable_share)
    exact_scores, exact_top = ExactScorer(items).top_k(q, k, exclude, unavailable)
    assert_lists_honour_the_masks(exact_scores, exact_top, min(k, n_items), n_items, exclude, unavailable)
    ann = AnnScorer.build(items, AnnParams(candidates=16))  # <= 300 items: nprobe 16 searches every list
    ann_scores, ann_top = ann.top_k(q, k, exclude, unavailable)
    assert_lists_honour_the_masks(ann_scores, ann_top, min(k, n_items), n_items, exclude, unavailable)
    torch.testing.assert_close(ann_scores, exact_scores, rtol=0, atol=1e-5)
    # Items of equal score may be ordered either way, and one tied with an item past the cut may be
    # cut instead of it (seed 131071: two items of score -1.3174 for the last place).
    tied = exact_scores == exact_scores[:, -1:]
    tied[:, 1:] |= exact_scores[:, 1:] == exact_scores[:, :-1]
    tied[:, :-1] |= exact_scores[:, :-1] == exact_scores[:, 1:]
    assert torch.equal(ann_top[~tied], exact_top[~tied])


def test_a_row_left_with_fewer_items_than_k_ends_with_unlisted_entries():
    items, q, _, _ = random_case(seed=5, n_items=50, n_rows=3, width=0, unavailable_share=0)
    unavailable = torch.arange(0, 40)
    exclude = torch.tensor([[40, 41, -1], [-1, -1, -1], [49, 48, 47]])
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams())):
        scores, top = scorer.top_k(q, 10, exclude, unavailable)
        assert torch.isfinite(scores).sum(1).tolist() == [8, 10, 7]
        assert set(top[2, :7].tolist()) == set(range(40, 47))
        assert (top[0, 8:] == -1).all() and (top[2, 7:] == -1).all()


def test_a_changed_unavailable_set_of_the_same_size_is_honoured():
    items, q, _, _ = random_case(seed=6, n_items=200, n_rows=4, width=0, unavailable_share=0)
    for scorer in (ExactScorer(items), AnnScorer.build(items, AnnParams())):
        _, best = scorer.top_k(q, 5)
        first = best[0].sort().values
        _, without_first = scorer.top_k(q, 5, unavailable=first)
        second = without_first[1].sort().values
        _, without_second = scorer.top_k(q, 5, unavailable=second)
        assert not torch.isin(without_second, second).any()
        assert not torch.isin(without_first, first).any()


def test_on_a_large_catalog_sold_out_best_sellers_and_long_histories_still_give_near_exact_full_lists():
    catalog = clustered_catalog(20_000)
    q = queries(96, catalog, seed=8)
    exact = ExactScorer(catalog)
    # The adversarial tenth: the items most often at the top of the lists become unavailable.
    _, best = exact.top_k(queries(2_000, catalog, seed=9), 20)
    popular = torch.bincount(best.flatten(), minlength=catalog.n_items).argsort(descending=True)
    unavailable = popular[: catalog.n_items // 10].sort().values
    exclude = torch.randint(catalog.n_items, (96, 200), generator=torch.Generator().manual_seed(10))
    _, seen = exact.top_k(q, 100)
    exclude[:, :50] = seen[:, ::2]  # half of them where they matter: among each row's best
    ann = AnnScorer.build(catalog, AnnParams(candidates=128, nprobe=16))
    ann_scores, ann_top = ann.top_k(q, 20, exclude, unavailable)
    assert_lists_honour_the_masks(ann_scores, ann_top, 20, catalog.n_items, exclude, unavailable)
    assert torch.isfinite(ann_scores).all()
    _, exact_top = exact.top_k(q, 20, exclude, unavailable)
    shared = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(ann_top, exact_top, strict=True))
    assert shared / exact_top.numel() >= 0.95
