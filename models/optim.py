"""Adagrad with momentum, the optimiser of the reference GRU4Rec.

Per parameter element: ``acc += g²``; ``mom = momentum * mom - lr * g / sqrt(acc + eps)``;
``param += mom``. Item matrices are updated row-sparsely: only the rows a step touched change, and
only their accumulator and momentum advance (an untouched row keeps its momentum for later).
"""

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from models.sparse import RowGradient


class AdagradMomentum:
    def __init__(self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, eps: float = 1e-6):
        if lr <= 0 or momentum < 0 or eps <= 0:
            raise ValueError(f"need lr > 0, momentum >= 0, eps > 0; got {lr}, {momentum}, {eps}")
        self.params = list(params)
        self.lr, self.momentum, self.eps = lr, momentum, eps
        # acc holds eps + sum of g², so the denominator is its square root: one pass less per step.
        self.acc = {p: torch.full_like(p, eps) for p in self.params}
        self.mom = {p: torch.zeros_like(p) for p in self.params} if momentum > 0 else {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, sparse: Sequence[RowGradient] = ()) -> None:
        """Apply the dense gradients in ``param.grad`` and the row-sparse ones in ``sparse``."""
        dense = [p for p in self.params if p.grad is not None]
        if dense:
            self._dense_update(dense)
        for rows in sparse:
            self._sparse_update(rows.param, rows.index, rows.grad)

    def _dense_update(self, params: list[nn.Parameter]) -> None:
        grads = [p.grad for p in params]
        accs = [self.acc[p] for p in params]
        torch._foreach_addcmul_(accs, grads, grads)
        denoms = torch._foreach_sqrt(accs)
        if self.momentum > 0:
            moms = [self.mom[p] for p in params]
            torch._foreach_mul_(moms, self.momentum)
            torch._foreach_addcdiv_(moms, grads, denoms, value=-self.lr)
            torch._foreach_add_(params, moms)
        else:
            torch._foreach_addcdiv_(params, grads, denoms, value=-self.lr)

    def _sparse_update(self, param: nn.Parameter, index: Tensor, grad: Tensor) -> None:
        """``index`` must be unique: rows are read, updated and written back."""
        acc = self.acc[param].index_select(0, index).addcmul_(grad, grad)
        _write_rows(self.acc[param], index, acc)
        denom = _sqrt_(acc)
        if self.momentum > 0:
            mom = self.mom[param].index_select(0, index).mul_(self.momentum)
            mom.addcdiv_(grad, denom, value=-self.lr)
            _write_rows(self.mom[param], index, mom)
            param.index_add_(0, index, mom)
        else:
            param.index_add_(0, index, grad.div(denom).mul_(-self.lr))


def _sqrt_(x: Tensor) -> Tensor:
    """In-place square root through numpy: correctly rounded and 1.6x faster here than torch's (MKL's
    ``vsSqrt``, which is not correctly rounded) on the rows of a step."""
    np.sqrt(x.numpy(), out=x.numpy())
    return x


def _write_rows(matrix: Tensor, index: Tensor, rows: Tensor) -> None:
    """``matrix[index] = rows`` through numpy, which copies whole rows: torch's ``index_copy_`` moves one
    element at a time, 4-5x slower for the ~1,500 rows of 100-224 floats of a training step."""
    matrix.numpy()[index.numpy()] = rows.numpy()
