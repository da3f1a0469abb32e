"""Losses over sampled scores.

``scores`` is ``[n, n + n_sample]``: row ``i`` scores the batch's ``n`` targets followed by the step's
shared negative samples, so row ``i``'s positive sits on the diagonal and every other column (the
other rows' targets included) is a negative. Both losses return the sum over rows; the trainer
divides by the batch size like the reference.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


class SampledCrossEntropy:
    """Softmax cross-entropy with logQ correction.

    In-batch targets occur with probability proportional to their popularity, negatives to
    popularity ** alpha; subtracting ``logq * log`` of those from the scores corrects the bias of
    scoring only a sample (the reference's logQ correction).
    """

    def __init__(self, counts: Tensor, sample_alpha: float, logq: float):
        log_pop = counts.double().clamp(min=1).log().float()
        self.logq = logq
        self.target_offset = logq * log_pop
        self.negative_offset = logq * sample_alpha * log_pop

    def __call__(self, scores: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
        if self.logq > 0:
            offsets = torch.cat([self.target_offset[targets], self.negative_offset[negatives]])
            scores = scores - offsets
        positives = torch.arange(len(targets))
        return F.cross_entropy(scores, positives, reduction="sum")


class BPRMax:
    """BPR-max: the BPR loss against a softmax-weighted mix of negatives, plus score regularisation.

    Scores first go through ELU (``elu_param`` > 0). Per row:
    ``-log(sum_j w_j * sigmoid(s_pos - s_j)) + bpreg * sum_j w_j * s_j²`` with ``w = softmax`` over
    the row's negatives (every column but the positive).
    """

    def __init__(self, bpreg: float, elu_param: float):
        self.bpreg = bpreg
        self.elu_param = elu_param

    def __call__(self, scores: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
        if self.elu_param > 0:
            scores = F.elu(scores, self.elu_param)
        n = len(targets)
        is_positive = torch.eye(n, scores.shape[1], dtype=torch.bool)
        weights = torch.softmax(scores.masked_fill(is_positive, float("-inf")), dim=1)
        positive = scores.diagonal().unsqueeze(1)
        bpr = -torch.log((weights * torch.sigmoid(positive - scores)).sum(1) + 1e-24)
        regulariser = (weights * scores.square()).sum(1)
        return (bpr + self.bpreg * regulariser).sum()
