"""Row-sparse gradients for the item matrices.

A training step touches only a few thousand rows of an item matrix. Instead of letting autograd
build a sparse gradient that has to be coalesced, the step gathers each distinct row once into a
small leaf tensor; after ``backward()`` that tensor's ``.grad`` is the row-sparse gradient with unique
indices, ready for the optimiser to write back.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class SparseRows:
    param: nn.Parameter  # the full matrix
    index: Tensor  # [U] distinct row indices, ascending
    rows: Tensor  # [U, ...] leaf copy of param[index] that collects the gradient

    @classmethod
    def gather(cls, param: nn.Parameter, ids: Tensor) -> tuple["SparseRows", Tensor]:
        """Gather the rows ``ids`` refers to; returns them and, per id, its position in ``rows``."""
        index, inverse = unique_with_inverse(ids, param.shape[0])
        rows = param.detach().index_select(0, index).requires_grad_()
        return cls(param, index, rows), inverse


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
