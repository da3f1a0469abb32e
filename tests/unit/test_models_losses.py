"""Sampled losses on cases small enough to check by hand, and against the drawn columns spelt out."""

import math

import pytest
import torch

from models.losses import BPRMax, SampledCrossEntropy, SampledScores
from tests.support.drawn_losses import drawn_bpr_max, drawn_cross_entropy


def sampled(scores, targets, items, counts) -> SampledScores:
    return SampledScores(*(torch.tensor(values) for values in (scores, targets, items, counts)))


def test_cross_entropy_without_logq_is_the_softmax_loss_of_the_diagonal():
    # 2 targets, then 1 distinct item drawn once
    loss = SampledCrossEntropy(torch.ones(4), sample_alpha=0.5, logq=0.0)
    value, _ = loss.value_and_gradient(sampled([[2.0, 0.0, 1.0], [1.0, 3.0, -1.0]], [0, 1], [2], [1]))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(1)))
    row1 = -math.log(math.exp(3) / (math.exp(1) + math.exp(3) + math.exp(-1)))
    assert math.isclose(value.item(), row0 + row1, rel_tol=1e-6)


def test_logq_subtracts_log_popularity_of_targets_and_alpha_times_that_of_negatives():
    counts = torch.tensor([4.0, 1.0, 9.0])
    loss = SampledCrossEntropy(counts, sample_alpha=0.5, logq=1.0)
    value, _ = loss.value_and_gradient(sampled([[1.0, 2.0, 0.5]], [0], [1, 2], [1, 1]))
    corrected = [1.0 - math.log(4), 2.0 - 0.5 * math.log(1), 0.5 - 0.5 * math.log(9)]
    expected = -corrected[0] + math.log(sum(math.exp(c) for c in corrected))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_bpr_max_against_a_hand_computation():
    value, _ = BPRMax(bpreg=0.5, elu_param=0.0).value_and_gradient(
        sampled([[1.0, 0.5, -1.0], [0.2, 2.0, 0.3]], [0, 1], [2], [1])
    )

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    expected = 0.0
    for i, row in enumerate([[1.0, 0.5, -1.0], [0.2, 2.0, 0.3]]):
        others = [s for j, s in enumerate(row) if j != i]
        weights = [math.exp(s) / sum(math.exp(o) for o in others) for s in others]
        bpr = -math.log(sum(w * sigmoid(row[i] - s) for w, s in zip(weights, others, strict=True)))
        expected += bpr + 0.5 * sum(w * s * s for w, s in zip(weights, others, strict=True))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_bpr_max_applies_elu_to_scores_first():
    scores, targets, items, counts = [[1.0, -2.0, -0.5], [-1.0, 0.5, 2.0]], [0, 1], [2], [1]
    with_elu, _ = BPRMax(bpreg=1.0, elu_param=0.5).value_and_gradient(sampled(scores, targets, items, counts))
    elu_scores = torch.nn.functional.elu(torch.tensor(scores), 0.5).tolist()
    on_elu_scores, _ = BPRMax(bpreg=1.0, elu_param=0.0).value_and_gradient(
        sampled(elu_scores, targets, items, counts)
    )
    assert torch.equal(with_elu, on_elu_scores)
    plain, _ = BPRMax(bpreg=1.0, elu_param=0.0).value_and_gradient(sampled(scores, targets, items, counts))
    assert not torch.equal(with_elu, plain)


@pytest.mark.parametrize("loss_name", ["cross-entropy", "bpr-max"])
def test_a_negative_drawn_k_times_weighs_like_k_drawn_columns(loss_name):
    g = torch.Generator().manual_seed(3)
    n_items, targets = 12, torch.tensor([4, 7, 4])
    negatives = torch.tensor([1, 9, 1, 1, 7, 0, 9])
    # The distinct columns also hold item 5, which a step needs only as an input: never drawn.
    items = torch.tensor([0, 1, 4, 5, 7, 9])
    negative_counts = torch.tensor([1, 3, 0, 0, 1, 2])
    distinct_scores = torch.randn(len(targets), len(items), generator=g)
    column_of = {item: c for c, item in enumerate(items.tolist())}

    def spread(items_of_columns):
        return distinct_scores[:, [column_of[i] for i in items_of_columns.tolist()]]

    item_counts = torch.randint(1, 50, (n_items,), generator=g)
    if loss_name == "cross-entropy":
        loss = SampledCrossEntropy(item_counts, sample_alpha=0.4, logq=1.0)

        def drawn(scores):
            return drawn_cross_entropy(scores, targets, negatives, item_counts, 0.4, 1.0)
    else:
        loss = BPRMax(bpreg=1.5, elu_param=0.5)

        def drawn(scores):
            return drawn_bpr_max(scores, 1.5, 0.5)

    scores = torch.cat([spread(targets), distinct_scores], dim=1)
    value, gradient = loss.value_and_gradient(SampledScores(scores.clone(), targets, items, negative_counts))

    drawn_scores = torch.cat([spread(targets), spread(negatives)], dim=1).requires_grad_()
    expected_value = drawn(drawn_scores)
    expected_value.backward()
    # Gradients of repeated columns add up on their distinct column; targets keep theirs.
    expected_gradient = torch.zeros_like(gradient)
    expected_gradient[:, : len(targets)] = drawn_scores.grad[:, : len(targets)]
    negative_columns = torch.tensor([len(targets) + column_of[i] for i in negatives.tolist()])
    expected_gradient.index_add_(1, negative_columns, drawn_scores.grad[:, len(targets) :])
    torch.testing.assert_close(value, expected_value.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-5, atol=1e-6)
    assert not gradient[:, len(targets) + column_of[5]].any()  # never drawn: no weight, no gradient
