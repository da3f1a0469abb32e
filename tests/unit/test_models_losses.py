"""Sampled losses on cases small enough to check by hand."""

import math

import torch

from models.losses import BPRMax, SampledCrossEntropy


def test_cross_entropy_without_logq_is_the_softmax_loss_of_the_diagonal():
    scores = torch.tensor([[2.0, 0.0, 1.0], [1.0, 3.0, -1.0]])  # 2 targets, then 1 negative
    loss = SampledCrossEntropy(torch.ones(4), sample_alpha=0.5, logq=0.0)
    value = loss(scores, torch.tensor([0, 1]), torch.tensor([2]))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(1)))
    row1 = -math.log(math.exp(3) / (math.exp(1) + math.exp(3) + math.exp(-1)))
    assert math.isclose(value.item(), row0 + row1, rel_tol=1e-6)


def test_logq_subtracts_log_popularity_of_targets_and_alpha_times_that_of_negatives():
    counts = torch.tensor([4.0, 1.0, 9.0])
    scores = torch.tensor([[1.0, 2.0, 0.5]])  # target item 0, negative items 1 and 2
    loss = SampledCrossEntropy(counts, sample_alpha=0.5, logq=1.0)
    value = loss(scores, torch.tensor([0]), torch.tensor([1, 2]))
    corrected = [1.0 - math.log(4), 2.0 - 0.5 * math.log(1), 0.5 - 0.5 * math.log(9)]
    expected = -corrected[0] + math.log(sum(math.exp(c) for c in corrected))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_bpr_max_against_a_hand_computation():
    scores = torch.tensor([[1.0, 0.5, -1.0], [0.2, 2.0, 0.3]])
    targets, negatives = torch.tensor([0, 1]), torch.tensor([2])
    value = BPRMax(bpreg=0.5, elu_param=0.0)(scores, targets, negatives)

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    expected = 0.0
    for i, row in enumerate(scores.tolist()):
        others = [s for j, s in enumerate(row) if j != i]
        weights = [math.exp(s) / sum(math.exp(o) for o in others) for s in others]
        bpr = -math.log(sum(w * sigmoid(row[i] - s) for w, s in zip(weights, others, strict=True)))
        expected += bpr + 0.5 * sum(w * s * s for w, s in zip(weights, others, strict=True))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_bpr_max_applies_elu_to_scores_first():
    scores = torch.tensor([[1.0, -2.0, -0.5], [-1.0, 0.5, 2.0]])
    targets, negatives = torch.tensor([0, 1]), torch.tensor([2])
    with_elu = BPRMax(bpreg=1.0, elu_param=0.5)(scores, targets, negatives)
    on_elu_scores = BPRMax(bpreg=1.0, elu_param=0.0)(torch.nn.functional.elu(scores, 0.5), targets, negatives)
    assert torch.equal(with_elu, on_elu_scores)
    assert not torch.equal(with_elu, BPRMax(bpreg=1.0, elu_param=0.0)(scores, targets, negatives))
