"""Recall@K / MRR@K: ranking with ties, the protocol, and the baselines."""

import math

import pytest
import torch

from models.data import encode_sessions, events_to_tsv, parse_events
from models.evaluate import (
    MetricAccumulator,
    evaluate_last_item,
    evaluate_model,
    evaluate_most_popular,
    pessimistic_ranks,
)
from models.model import GRU4Rec, ModelConfig


def test_ties_count_against_the_target():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0], [0.5, 0.5, 0.5, 0.5], [4.0, 3.0, 2.0, 1.0]])
    ranks = pessimistic_ranks(scores, torch.tensor([1, 0, 0]))
    assert ranks.tolist() == [2, 4, 1]  # tied with one other item; tied with all; strictly best


def test_metrics_of_a_hand_made_ranking():
    metrics = MetricAccumulator([1, 5, 20])
    metrics.add(torch.tensor([1, 2]))
    metrics.add(torch.tensor([5, 30]))
    result = metrics.result()
    assert result["n_predictions"] == 4
    assert result["recall@1"] == 0.25 and result["mrr@1"] == 0.25
    assert result["recall@5"] == 0.75 and math.isclose(result["mrr@5"], (1 + 1 / 2 + 1 / 5) / 4)
    assert result["recall@20"] == 0.75 and math.isclose(result["mrr@20"], result["mrr@5"])


def log_of(text: str):
    """A log from lines of ``session item time event_type``."""
    rows = [line.split() for line in text.strip().splitlines()]
    return parse_events(events_to_tsv((s, i, float(t), e) for s, i, t, e in rows))


def tiny_logs():
    train = log_of("""
        a x 1 click
        a y 2 click
        a z 3 click
        b x 4 click
        b y 5 click
        c z 6 click
        c x 7 click
        d w 8 click
        d w 9 click
        d w 10 click
    """)
    test = log_of("""
        s x 1 click
        s y 2 buy
        s new 3 click
        s z 4 click
        t z 5 click
        t w 6 click
        u new 7 click
        u x 8 click
    """)
    return train, test


def test_most_popular_baseline():
    train, test = tiny_logs()
    # Counts: x 3, w 3, y 2, z 2. Predictions (unknown "new" dropped): y, z | w | none for "u".
    result = evaluate_most_popular(train, test, [1, 2, 4])
    assert result["n_predictions"] == 3
    assert result["recall@1"] == 0.0  # x and w tie at the top: each ranks 2nd
    assert result["recall@2"] == pytest.approx(1 / 3) and result["mrr@2"] == pytest.approx(0.5 / 3)
    assert result["mrr@4"] == pytest.approx((1 / 4 + 1 / 4 + 1 / 2) / 3)


def test_last_item_baseline_breaks_count_ties_by_popularity():
    train, test = tiny_logs()
    # x->y twice; y->z once; z->x once; w->w twice. Predictions: x->y, y->z, z->w.
    result = evaluate_last_item(train, test, [1, 3])
    assert result["recall@1"] == pytest.approx(2 / 3)  # y after x and z after y are first
    # After z: x (followed z once) ranks first, then w (popularity 3, no transition) second.
    assert result["mrr@3"] == pytest.approx((1 + 1 + 1 / 2) / 3)


def test_model_evaluation_equals_a_naive_per_session_loop():
    _, test = tiny_logs()
    item_ids = ["x", "y", "z", "w"]
    model = GRU4Rec(ModelConfig(n_items=4, hidden=6), torch.Generator().manual_seed(3)).eval()
    with torch.no_grad():
        model.event_weight.normal_()
    result = evaluate_model(model, item_ids, test, cutoffs=[1, 2], batch_size=2)

    sessions = encode_sessions(test, {item: i for i, item in enumerate(item_ids)})
    ranks = []
    for s in range(len(sessions.offsets) - 1):
        items = sessions.items[sessions.offsets[s] : sessions.offsets[s + 1]]
        types = sessions.event_types[sessions.offsets[s] : sessions.offsets[s + 1]]
        for k in range(1, len(items)):
            hidden = model.encode(torch.tensor(items[:k]), torch.tensor(types[:k])).unsqueeze(0)
            scores = model.scores(hidden)[0]
            ranks.append(int((scores >= scores[items[k]]).sum()))
    assert result["n_predictions"] == len(ranks) == 3
    assert result["recall@2"] == pytest.approx(sum(r <= 2 for r in ranks) / 3)
    assert result["mrr@2"] == pytest.approx(sum(1 / r for r in ranks if r <= 2) / 3)


def test_nothing_to_predict_gives_zero_predictions():
    train, _ = tiny_logs()
    unknown_only = log_of("s new 1 click\ns other 2 click")
    model = GRU4Rec(ModelConfig(n_items=4, hidden=6))
    assert evaluate_model(model, ["x", "y", "z", "w"], unknown_only, [5])["n_predictions"] == 0
    assert evaluate_last_item(train, unknown_only, [5]) == {"recall@5": 0.0, "mrr@5": 0.0, "n_predictions": 0}
