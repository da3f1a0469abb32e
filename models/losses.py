"""Losses over sampled scores, with their gradient.

Row ``i`` of a step's ``n`` rows is scored against the step's ``n`` targets (its own target, on the
diagonal, is the positive; the others are negatives) and against ``n_sample`` shared negatives drawn
with replacement. The negatives come as the step's distinct items, each with the number of times it
was drawn (zero for an item the step needs for another reason): a softmax over the drawn columns then
equals the softmax over the distinct columns with ``log(count)`` added, and the ~2,000 drawn columns
shrink to the ~1,400 distinct ones without spreading scores to repeated columns and summing their
gradients back.

Both losses return the sum over rows and its gradient with respect to ``scores``; the trainer divides
both by the batch size like the reference.
"""

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SampledScores:
    scores: Tensor  # [n, n + U]: each row against the n targets, then against the U distinct items
    targets: Tensor  # [n] item indices
    items: Tensor  # [U] item indices of the distinct columns
    negative_counts: Tensor  # [U] int64: how many of the step's negatives each distinct item is

    def log_counts(self) -> Tensor:
        """``log(count)`` per column: 0 for the targets, -inf for a distinct item never drawn."""
        return torch.cat([torch.zeros(len(self.targets)), self.negative_counts.float().log_()])


class SampledLoss(Protocol):
    def value_and_gradient(self, sampled: SampledScores) -> tuple[Tensor, Tensor]:
        """The summed loss and its gradient with respect to ``sampled.scores`` (which it may overwrite)."""
        ...


class SampledCrossEntropy:
    """Softmax cross-entropy with logQ correction.

    In-batch targets occur with probability proportional to their popularity, negatives to
    popularity ** alpha; subtracting ``logq * log`` of those from the scores corrects the bias of
    scoring only a sample (the reference's logQ correction).
    """

    def __init__(self, counts: Tensor, sample_alpha: float, logq: float):
        log_pop = counts.double().clamp(min=1).log().float()
        self.target_offset = logq * log_pop
        self.negative_offset = logq * sample_alpha * log_pop

    def value_and_gradient(self, sampled: SampledScores) -> tuple[Tensor, Tensor]:
        negative_offsets = self.negative_offset.index_select(0, sampled.items)
        negative_offsets.sub_(sampled.negative_counts.float().log_())
        logits = sampled.scores.sub_(
            torch.cat([self.target_offset.index_select(0, sampled.targets), negative_offsets])
        )
        log_probs = torch.log_softmax(logits, dim=1)
        value = -log_probs.diagonal().sum()
        gradient = log_probs.exp_()  # softmax minus the one-hot positive
        gradient.diagonal().sub_(1.0)
        return value, gradient


class BPRMax:
    """BPR-max: the BPR loss against a softmax-weighted mix of negatives, plus score regularisation.

    Scores first go through ELU (``elu_param`` > 0). Per row:
    ``-log(sum_j w_j * sigmoid(s_pos - s_j)) + bpreg * sum_j w_j * s_j²`` with ``w = softmax`` over
    the row's negatives (every drawn column but the positive). The gradient comes from autograd over
    these few operations.
    """

    def __init__(self, bpreg: float, elu_param: float):
        self.bpreg = bpreg
        self.elu_param = elu_param

    def value_and_gradient(self, sampled: SampledScores) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            scores = sampled.scores.detach().requires_grad_()
            value = self._value(scores, sampled.log_counts())
            (gradient,) = torch.autograd.grad(value, scores)
        return value.detach(), gradient

    def _value(self, scores: Tensor, log_counts: Tensor) -> Tensor:
        if self.elu_param > 0:
            scores = F.elu(scores, self.elu_param)
        is_positive = torch.eye(len(scores), scores.shape[1], dtype=torch.bool)
        weights = torch.softmax((scores + log_counts).masked_fill(is_positive, float("-inf")), dim=1)
        positive = scores.diagonal().unsqueeze(1)
        bpr = -torch.log((weights * torch.sigmoid(positive - scores)).sum(1) + 1e-24)
        regulariser = (weights * scores.square()).sum(1)
        return (bpr + self.bpreg * regulariser).sum()
