"""Adagrad with momentum: the row-sparse update equals the dense one on the rows it touches."""

import torch
from torch import nn

from models.optim import AdagradMomentum
from models.sparse import RowGradient, unique_with_inverse

LR, MOMENTUM, EPS = 0.1, 0.3, 1e-6


def dense_reference(param, grads_and_masks):
    """The reference formula applied to whole matrices, with untouched rows frozen (state included)."""
    param, acc, mom = param.clone(), torch.zeros_like(param), torch.zeros_like(param)
    for grad, touched in grads_and_masks:
        t = touched.unsqueeze(1)
        acc = torch.where(t, acc + grad * grad, acc)
        mom = torch.where(t, MOMENTUM * mom - LR * grad / torch.sqrt(acc + EPS), mom)
        param = torch.where(t, param + mom, param)
    return param


def test_sparse_update_equals_the_dense_reference_on_touched_rows():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(6, 3, generator=g)
    param = nn.Parameter(start.clone())
    optimizer = AdagradMomentum([param], LR, MOMENTUM, EPS)
    history = []
    for ids in ([1, 3, 0], [5, 3], [0, 1, 5]):
        index = torch.tensor(ids)
        grad = torch.randn(len(ids), 3, generator=g)
        dense_grad = torch.zeros(6, 3).index_add_(0, index, grad)
        touched = torch.zeros(6, dtype=torch.bool)
        touched[ids] = True
        history.append((dense_grad, touched))
        optimizer.step([RowGradient(param, index, grad)])
    torch.testing.assert_close(param.detach(), dense_reference(start, history), rtol=1e-6, atol=1e-6)
    assert torch.equal(param.detach()[2], start[2]) and torch.equal(param.detach()[4], start[4])


def test_dense_update_follows_the_formula():
    param = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = AdagradMomentum([param], LR, MOMENTUM, EPS)
    expected, acc, mom = param.detach().clone(), torch.zeros(2), torch.zeros(2)
    for grad in (torch.tensor([0.5, -1.0]), torch.tensor([0.2, 0.0])):
        param.grad = grad.clone()
        optimizer.step()
        acc += grad**2
        mom = MOMENTUM * mom - LR * grad / torch.sqrt(acc + EPS)
        expected += mom
    torch.testing.assert_close(param.detach(), expected, rtol=1e-6, atol=1e-7)


def test_unique_with_inverse_matches_torch_unique():
    ids = torch.tensor([7, 2, 7, 0, 9, 2])
    index, inverse = unique_with_inverse(ids, size=10)
    expected_index, expected_inverse = torch.unique(ids, return_inverse=True)
    assert torch.equal(index, expected_index) and torch.equal(inverse, expected_inverse)
