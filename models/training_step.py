"""One GRU4Rec training step with its backward pass written out.

A step feeds one event per row, scores the batch's targets and the shared negatives, and
backpropagates through that step only (the incoming state is a constant). That backward pass is
short: the output layer, each GRU layer once, the input rows. Written out, without autograd's graph
and bookkeeping, and with each distinct negative scored once (:mod:`models.losses`), a step of the
rsc15 preset takes about a quarter less CPU time than through autograd (README, "Models").

As in the reference, hidden dropout applies to each layer's output, and the dropped-out output is
what the next layer and the next step see. The forward pass repeats ``nn.GRUCell``'s CPU arithmetic
operation by operation, so without dropout a state computed here has the bits ``GRU4Rec.step`` gives.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.losses import SampledLoss, SampledScores
from models.model import GRU4Rec
from models.sparse import RowGradient, unique_with_inverse

aten = torch.ops.aten


@dataclass
class StepResult:
    loss: Tensor  # the loss summed over rows, divided by the batch size
    hidden: Tensor  # [n, n_layers, hidden]: the next state, dropped out as the next step sees it
    rows: list[RowGradient]  # the item matrices' gradients; dense parameters get theirs in .grad


@dataclass
class _GRUCache:
    """What a layer's backward pass needs from its forward pass."""

    x: Tensor  # input
    h: Tensor  # incoming state
    r: Tensor  # reset gate
    z: Tensor  # update gate
    n: Tensor  # candidate state
    h_n: Tensor  # the state's part of the candidate, before the reset gate
    state_minus_n: Tensor  # h - n


class TrainingStep:
    def __init__(self, model: GRU4Rec, loss: SampledLoss, batch_size: int, generator: torch.Generator):
        """``generator`` draws the dropout masks."""
        self.model, self.loss, self.batch_size, self.generator = model, loss, batch_size, generator

    @torch.no_grad()
    def __call__(
        self, items: Tensor, event_types: Tensor | None, hidden: Tensor, targets: Tensor, negatives: Tensor
    ) -> StepResult:
        """Loss and gradients for one step of ``n`` rows: ``items`` and ``targets`` ``[n]``, ``hidden``
        ``[n, n_layers, hidden]``, ``negatives`` shared by all rows; ``event_types=None``: all clicks."""
        model, config, n = self.model, self.model.config, len(items)
        shared = model.input_weight is None  # the input rows are rows of the output matrix
        if shared:
            index, positions = unique_with_inverse(torch.cat([items, targets, negatives]), model.n_items)
            input_index, input_positions, positions = index, positions[:n], positions[n:]
        else:
            input_index, input_positions = unique_with_inverse(items, model.n_items)
            index, positions = unique_with_inverse(torch.cat([targets, negatives]), model.n_items)
        target_positions = positions[:n]
        negative_counts = torch.bincount(positions[n:], minlength=len(index))
        item_rows = model.item_weight.index_select(0, index)
        input_rows = item_rows if shared else model.input_weight.index_select(0, input_index)

        x = model.add_event_vectors(input_rows.index_select(0, input_positions), event_types)
        x, input_mask = self._dropout(x, config.dropout_embed)
        caches, masks, outputs = [], [], []
        for layer, cell in enumerate(model.cells):
            new_state, cache = _gru_forward(cell, x, hidden[:, layer])
            x, mask = self._dropout(new_state, config.dropout_hidden)
            caches.append(cache)
            masks.append(mask)
            outputs.append(x)
        distinct_scores = torch.addmm(model.item_bias.index_select(0, index), x, item_rows.t())
        scores = torch.cat([distinct_scores.index_select(1, target_positions), distinct_scores], dim=1)
        sampled = SampledScores(scores, targets, index, negative_counts)
        loss, grad_scores = self.loss.value_and_gradient(sampled)
        grad_scores.div_(self.batch_size)

        grad_distinct = grad_scores[:, n:].index_add_(1, target_positions, grad_scores[:, :n])
        grad_item_rows = grad_distinct.t() @ x
        grad = grad_distinct @ item_rows
        for cell, cache, mask in zip(reversed(model.cells), reversed(caches), reversed(masks), strict=True):
            grad = _gru_backward(cell, cache, _masked_(grad, mask))
        grad = _masked_(grad, input_mask)
        if event_types is not None:
            grad_events = torch.zeros(len(model.event_weight) + 1, grad.shape[1])
            model.event_weight.grad = grad_events.index_add_(0, event_types, grad)[1:]  # row 0: click
        grad_bias = grad_distinct.sum(0)
        if shared:
            grad_item_rows.index_add_(0, input_positions, grad)
            # Only the scored items' biases take a step; the rows only an input needs keep theirs.
            scored = negative_counts.bool().index_fill_(0, target_positions, True).nonzero().squeeze(1)
            scored_index, scored_grad = index.index_select(0, scored), grad_bias.index_select(0, scored)
            rows = [
                RowGradient(model.item_weight, index, grad_item_rows),
                RowGradient(model.item_bias, scored_index, scored_grad),
            ]
        else:
            grad_input_rows = torch.zeros_like(input_rows).index_add_(0, input_positions, grad)
            rows = [
                RowGradient(model.input_weight, input_index, grad_input_rows),
                RowGradient(model.item_weight, index, grad_item_rows),
                RowGradient(model.item_bias, index, grad_bias),
            ]
        return StepResult(loss.div_(self.batch_size), torch.stack(outputs, dim=1), rows)

    def _dropout(self, x: Tensor, p: float) -> tuple[Tensor, Tensor | None]:
        """Inverted dropout of ``x``, as ``F.dropout``, and its scaled keep mask (None: nothing dropped)."""
        if p == 0:
            return x, None
        # uniform < 1 - p is the Bernoulli draw, 2-3x faster than bernoulli_ (53 -> 24 us for 32 x 100)
        mask = torch.rand(x.shape, generator=self.generator).lt_(1 - p).div_(1 - p)
        return x * mask, mask


def _masked_(grad: Tensor, mask: Tensor | None) -> Tensor:
    """The gradient through dropout, in place."""
    return grad if mask is None else grad.mul_(mask)


def _gru_forward(cell: nn.GRUCell, x: Tensor, h: Tensor) -> tuple[Tensor, _GRUCache]:
    """``cell(x, h)`` in ``torch.gru_cell``'s order of operations."""
    input_gates = torch.addmm(cell.bias_ih, x, cell.weight_ih.t())
    state_gates = torch.addmm(cell.bias_hh, h, cell.weight_hh.t())
    i_r, i_z, i_n = input_gates.chunk(3, 1)
    h_r, h_z, h_n = state_gates.chunk(3, 1)
    r = h_r.add_(i_r).sigmoid_()
    z = h_z.add_(i_z).sigmoid_()
    n = i_n.add(h_n * r).tanh_()
    state_minus_n = h - n
    return (state_minus_n * z).add_(n), _GRUCache(x, h, r, z, n, h_n, state_minus_n)


def _gru_backward(cell: nn.GRUCell, c: _GRUCache, grad: Tensor) -> Tensor:
    """Sets the cell's parameter gradients from ``grad`` (of its output); returns the input's gradient.

    ``h' = n + z * (h - n)``, ``n = tanh(i_n + r * h_n)``, ``r`` and ``z`` sigmoids of the gate sums.
    """
    size = c.h.shape[1]
    grad_input_gates = torch.empty(len(grad), 3 * size)
    grad_r, grad_z, grad_n_sum = grad_input_gates.chunk(3, 1)
    aten.tanh_backward.grad_input(grad * (1 - c.z), c.n, grad_input=grad_n_sum)
    aten.sigmoid_backward.grad_input(grad_n_sum * c.h_n, c.r, grad_input=grad_r)
    aten.sigmoid_backward.grad_input(grad * c.state_minus_n, c.z, grad_input=grad_z)
    grad_state_gates = grad_input_gates.clone()
    grad_state_gates[:, 2 * size :].mul_(c.r)
    cell.weight_ih.grad = grad_input_gates.t() @ c.x
    cell.weight_hh.grad = grad_state_gates.t() @ c.h
    cell.bias_ih.grad = grad_input_gates.sum(0)
    cell.bias_hh.grad = grad_state_gates.sum(0)
    return grad_input_gates @ cell.weight_ih
