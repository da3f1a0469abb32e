"""Evaluation through a scorer's lists: the same figures as the exact ranking when the lists are the
exact ones, and memory bounded on large catalogs."""

import pytest
import torch

from models import evaluate
from models.ann import AnnParams, AnnScorer
from models.data import parse_events
from models.evaluate import evaluate_model
from models.model import GRU4Rec, ModelConfig
from models.scoring import ExactScorer

N_ITEMS = 60


@pytest.fixture(scope="module")
def model() -> GRU4Rec:
    return GRU4Rec(ModelConfig(n_items=N_ITEMS, hidden=8), torch.Generator().manual_seed(3)).eval()


@pytest.fixture(scope="module")
def sessions():
    g = torch.Generator().manual_seed(4)
    rows = ["SessionId\tItemId\tTime"]
    for session in range(80):
        for step in range(int(torch.randint(2, 7, (1,), generator=g))):
            rows.append(
                f"{session}\t{int(torch.randint(N_ITEMS, (1,), generator=g))}\t{1e9 + session * 100 + step}"
            )
    return parse_events(("\n".join(rows) + "\n").encode())


def test_ranking_within_exact_lists_gives_the_exact_figures_and_full_overlap(model, sessions):
    item_ids = [str(i) for i in range(N_ITEMS)]
    ranked = evaluate_model(model, item_ids, sessions, cutoffs=(1, 5, 20))
    listed = evaluate_model(
        model, item_ids, sessions, cutoffs=(1, 5, 20), scorer=ExactScorer(model.item_table())
    )
    assert listed.pop("overlap@20") == 1.0
    assert listed == pytest.approx(ranked)


def test_the_approximate_scorer_reports_its_overlap(model, sessions):
    item_ids = [str(i) for i in range(N_ITEMS)]
    ann = AnnScorer.build(model.item_table(), AnnParams(candidates=20, nprobe=1))
    metrics = evaluate_model(model, item_ids, sessions, cutoffs=(20,), scorer=ann)
    assert 0.0 < metrics["overlap@20"] <= 1.0 and metrics["n_predictions"] > 0


def test_exact_ranks_are_computed_a_slice_of_rows_at_a_time(model, sessions, monkeypatch):
    item_ids = [str(i) for i in range(N_ITEMS)]
    whole = evaluate_model(model, item_ids, sessions)
    widths = []
    scores = model.scores
    monkeypatch.setattr(evaluate, "SCORE_BUDGET", 3 * N_ITEMS)
    monkeypatch.setattr(model, "scores", lambda hidden: widths.append(len(hidden)) or scores(hidden))
    assert evaluate_model(model, item_ids, sessions) == whole
    assert max(widths) == 3
