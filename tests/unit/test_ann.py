"""The approximate scorer: exact scores for what it returns, exclusions before the cut, K items
always, the same list for a row in any batch, the exact lists on a catalog with structure, and the
items of highest bias for every query (the head list)."""

import faiss
import pytest
import torch

from models.ann import AnnParams, AnnScorer, IndexMismatch, build_index
from models.contract import ItemTable
from models.scoring import ExactScorer

DIM = 16


def clustered_catalog(n_items: int, seed: int = 0) -> ItemTable:
    """Items around a few hundred topic directions, popularity in the bias: the shape trained item
    embeddings have (random isotropic vectors have no neighbourhoods to find)."""
    g = torch.Generator().manual_seed(seed)
    topics = torch.randn(max(8, n_items // 200), DIM, generator=g)
    vectors = topics[torch.randint(len(topics), (n_items,), generator=g)] + 0.3 * torch.randn(
        n_items, DIM, generator=g
    )
    return ItemTable(vectors, 0.5 * torch.randn(n_items, generator=g))


def queries(n: int, items: ItemTable, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return items.vectors[torch.randint(items.n_items, (n,), generator=g)] + 0.3 * torch.randn(
        n, DIM, generator=g
    )


@pytest.fixture(scope="module")
def catalog() -> ItemTable:
    return clustered_catalog(20_000)


@pytest.fixture(scope="module")
def ann(catalog) -> AnnScorer:
    return AnnScorer.build(catalog, AnnParams(candidates=128, nprobe=16))


def test_returned_items_carry_their_exact_scores_best_first(catalog, ann):
    q = queries(40, catalog)
    scores, items = ann.top_k(q, 20)
    exact = ExactScorer(catalog).scores(q)
    torch.testing.assert_close(scores, exact.gather(1, items), rtol=0, atol=1e-5)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_on_a_catalog_with_structure_the_lists_are_the_exact_ones(catalog, ann):
    q = queries(200, catalog, seed=2)
    _, approximate = ann.top_k(q, 20)
    _, exact = ExactScorer(catalog).top_k(q, 20)
    overlap = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approximate, exact, strict=True))
    assert overlap / (200 * 20) >= 0.95


def test_excluded_items_are_left_out_before_the_cut(catalog, ann):
    q = queries(8, catalog, seed=3)
    _, best = ann.top_k(q, 20)
    exclude = best[:, :5]
    scores, kept = ann.top_k(q, 20, exclude)
    assert kept.shape == (8, 20) and torch.isfinite(scores).all()
    assert not (kept.unsqueeze(2) == exclude.unsqueeze(1)).any()


def test_a_row_gets_k_items_even_when_the_candidates_run_short():
    items = clustered_catalog(300)
    tiny = AnnScorer.build(items, AnnParams(candidates=4, nprobe=1))
    q = queries(5, items)
    scores, top = tiny.top_k(q, 50, torch.arange(5))
    assert top.shape == (5, 50) and torch.isfinite(scores).all()
    assert all(len(set(row.tolist())) == 50 for row in top)


def test_a_row_gets_the_same_list_in_any_batch(catalog, ann):
    q = queries(70, catalog, seed=4)
    alone = torch.cat([ann.top_k(q[i : i + 1], 20)[1] for i in range(70)])
    assert torch.equal(ann.top_k(q, 20)[1], alone)
    assert torch.equal(ann.top_k(q[33:], 20)[1], alone[33:])


def test_items_whose_bias_outweighs_any_direction_are_listed_for_every_query(catalog):
    bias = catalog.bias.clone()
    best_sellers = torch.tensor([3, 1_000, 7_777, 12_345, 19_999])
    bias[best_sellers] = 1_000.0  # far above any q · v
    boosted = ItemTable(catalog.vectors, bias)
    one_list = AnnScorer.build(boosted, AnnParams(nprobe=1))
    _, top = one_list.top_k(queries(64, catalog, seed=5), 20)
    assert (top[:, :5].sort(1).values == best_sellers).all()


def test_an_index_of_another_catalog_is_refused(catalog):
    other = build_index(clustered_catalog(500), AnnParams())
    with pytest.raises(IndexMismatch, match="500 vectors"):
        AnnScorer(catalog, other, AnnParams())
    assert isinstance(other, faiss.Index)
