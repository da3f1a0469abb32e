"""Row-sparse gradients for the item matrices.

A training step touches only a few thousand rows of an item matrix. It gathers each distinct row once,
so its gradient is one row per distinct index, ready for the optimiser to write back without the
coalescing a sparse tensor would need.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class RowGradient:
    """The gradient of ``param[index]``: row ``k`` of ``grad`` belongs to row ``index[k]`` of ``param``."""

    param: nn.Parameter  # the full matrix
    index: Tensor  # [U] distinct row indices
    grad: Tensor  # [U, ...]


def unique_with_inverse(ids: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """``torch.unique(ids, return_inverse=True)`` for ids in ``[0, size)``, by marking instead of sorting.

    Faster than sorting for the few thousand ids of a step as long as ``size`` is at most ~10^6.
    """
    present = torch.zeros(size, dtype=torch.bool)
    present.index_fill_(0, ids, True)
    index = present.nonzero().squeeze(1)
    position = torch.empty(size, dtype=torch.int64)
    position.index_copy_(0, index, torch.arange(len(index)))
    return index, position.index_select(0, ids)
