"""The sampled losses written over the drawn columns, as the reference computes them: every negative
drawn k times is k columns. Autograd through these is the oracle for the training step's own losses
and gradients."""

import torch
import torch.nn.functional as F
from torch import Tensor


def drawn_cross_entropy(
    scores: Tensor, targets: Tensor, negatives: Tensor, item_counts: Tensor, alpha: float, logq: float
) -> Tensor:
    log_pop = item_counts.double().clamp(min=1).log().float()
    offsets = torch.cat([logq * log_pop[targets], logq * alpha * log_pop[negatives]])
    return F.cross_entropy(scores - offsets, torch.arange(len(targets)), reduction="sum")


def drawn_bpr_max(scores: Tensor, bpreg: float, elu_param: float) -> Tensor:
    scores = F.elu(scores, elu_param) if elu_param > 0 else scores
    is_positive = torch.eye(len(scores), scores.shape[1], dtype=torch.bool)
    weights = torch.softmax(scores.masked_fill(is_positive, float("-inf")), dim=1)
    bpr = -torch.log((weights * torch.sigmoid(scores.diagonal().unsqueeze(1) - scores)).sum(1) + 1e-24)
    return (bpr + bpreg * (weights * scores.square()).sum(1)).sum()
