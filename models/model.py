"""GRU4Rec: a GRU over a session's events that scores every item as the next one.

Input of a step: the item's embedding plus a learned vector for the event type. With the default
shared ("constrained") embedding the input embedding of an item is its row of the output item matrix;
otherwise items have a separate input embedding. The click vector is fixed at zero, so on click-only
data the model is exactly the plain GRU4Rec. One or more GRU layers follow; the score of item ``i`` is
``h · W[i] + b[i]`` with ``h`` the top layer's state.

A user's state is ``[n_layers, hidden]``; batches of states are ``[B, n_layers, hidden]``. As in the
reference, hidden dropout is applied to each layer's output and the dropped-out output is what the
next step sees (training only).
"""

import itertools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.contract import ItemTable
from models.scoring import ExactScorer
from models.serving_blocks import blocks, padded
from models.sparse import SparseRows
from schemas.events import EventType


@dataclass(frozen=True)
class ModelConfig:
    n_items: int
    hidden: int = 100
    n_layers: int = 1
    embedding: int = 0  # 0: shared embedding (the input embedding is the output item matrix)
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.0
    n_event_types: int = len(EventType)

    def __post_init__(self) -> None:
        for name in ("n_items", "hidden", "n_layers", "n_event_types"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.embedding, int) and self.embedding >= 0):
            raise ValueError(f"embedding must be an integer >= 0, got {self.embedding!r}")
        for name in ("dropout_embed", "dropout_hidden"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def input_size(self) -> int:
        return self.embedding or self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampledStep:
    """One training-time step: scores of the requested items, the new state, and the gathered item rows."""

    scores: Tensor  # [B, n_out]
    hidden: Tensor  # [B, n_layers, hidden]
    rows: list[SparseRows]  # item-matrix rows whose .grad the optimiser applies row-sparsely


class GRU4Rec(nn.Module):
    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.n_items = config.n_items
        self.state_shape = (config.n_layers, config.hidden)
        self.item_weight = nn.Parameter(torch.empty(config.n_items, config.hidden))
        self.item_bias = nn.Parameter(torch.zeros(config.n_items))
        if config.embedding:
            self.input_weight = nn.Parameter(torch.empty(config.n_items, config.embedding))
        else:
            self.register_parameter("input_weight", None)
        # Rows for the event types after CLICK; the click vector is a constant zero.
        self.event_weight = nn.Parameter(torch.zeros(config.n_event_types - 1, config.input_size))
        sizes = [config.input_size] + [config.hidden] * config.n_layers
        self.cells = nn.ModuleList(nn.GRUCell(i, o) for i, o in itertools.pairwise(sizes))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The reference's initialisation: U(-s, s) with s = sqrt(6 / (fan_in + fan_out)) per gate block."""
        _glorot_uniform_(self.item_weight, generator)
        self.item_bias.zero_()
        if self.input_weight is not None:
            _glorot_uniform_(self.input_weight, generator)
        self.event_weight.zero_()
        for cell in self.cells:
            for weight in (cell.weight_ih, cell.weight_hh):
                for gate in weight.chunk(3, dim=0):
                    _glorot_uniform_(gate, generator)
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()

    def sparse_parameter_names(self) -> set[str]:
        """Parameters that are only ever updated row-sparsely, through :class:`SparseRows`."""
        return {"item_weight", "item_bias"} | ({"input_weight"} if self.input_weight is not None else set())

    # --- training-time forward pass -------------------------------------------------------------

    def forward(
        self, items: Tensor, event_types: Tensor | None, hidden: Tensor, out_items: Tensor
    ) -> SampledStep:
        """One step for a batch, scoring only ``out_items``; dropout applies in training mode.

        ``event_types=None`` means all clicks (it skips adding the click vector, which is zero).
        """
        n = len(items)
        if self.input_weight is None:
            item_rows, positions = SparseRows.gather(self.item_weight, torch.cat([items, out_items]))
            x = item_rows.rows.index_select(0, positions[:n])
            out_positions = positions[n:]
            rows = [item_rows]
        else:
            input_rows, input_positions = SparseRows.gather(self.input_weight, items)
            x = input_rows.rows.index_select(0, input_positions)
            item_rows, out_positions = SparseRows.gather(self.item_weight, out_items)
            rows = [input_rows, item_rows]
        bias_rows, bias_positions = SparseRows.gather(self.item_bias, out_items)
        rows.append(bias_rows)

        x = self._add_event_vectors(x, event_types)
        if self.training and self.config.dropout_embed > 0:
            x = F.dropout(x, self.config.dropout_embed)
        hidden = self._advance(x, hidden, dropout=self.training)
        # Score each distinct item once (negatives repeat a lot), then spread to the requested columns.
        distinct_scores = hidden[:, -1] @ item_rows.rows.T
        bias = bias_rows.rows.index_select(0, bias_positions)
        scores = distinct_scores.index_select(1, out_positions) + bias
        return SampledStep(scores=scores, hidden=hidden, rows=rows)

    # --- inference API (the streamer's hot path) ------------------------------------------------

    def zero_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, *self.state_shape)

    # step (like the scorers) gives a row the same bits whatever the other rows and however many: its
    # matrix products run on blocks of exactly SERVING_BLOCK rows (models.serving_blocks says why).

    @torch.inference_mode()
    def step(self, hidden: Tensor, items: Tensor, event_types: Tensor) -> Tensor:
        """Advance ``[B, n_layers, hidden]`` states by one event each; no dropout, no autograd."""
        table = self.item_weight if self.input_weight is None else self.input_weight
        x = padded(self._add_event_vectors(table.index_select(0, items), event_types))
        padded_hidden = padded(hidden)
        advanced = torch.empty_like(padded_hidden)
        for block in blocks(len(hidden)):
            advanced[block] = self._advance(x[block], padded_hidden[block], dropout=False)
        return advanced[: len(hidden)]

    def query(self, hidden: Tensor) -> Tensor:
        """The top layer of ``[B, n_layers, hidden]`` states: what items are scored against."""
        return hidden[:, -1]

    def item_table(self) -> ItemTable:
        return ItemTable(self.item_weight, self.item_bias)

    def scores(self, hidden: Tensor) -> Tensor:
        """Scores of all items, ``[B, n_items]``, from ``[B, n_layers, hidden]`` states."""
        return ExactScorer(self.item_table()).scores(self.query(hidden))

    @torch.inference_mode()
    def encode(self, items: Tensor, event_types: Tensor) -> Tensor:
        """The state ``[n_layers, hidden]`` after one sequence of events, starting from zero."""
        hidden = self.zero_state(1)
        for i in range(len(items)):
            hidden = self.step(hidden, items[i : i + 1], event_types[i : i + 1])
        return hidden[0]

    # --- shared pieces --------------------------------------------------------------------------

    def _add_event_vectors(self, x: Tensor, event_types: Tensor | None) -> Tensor:
        if event_types is None:
            return x
        table = F.pad(self.event_weight, (0, 0, 1, 0))  # prepend the zero click vector
        return x + table.index_select(0, event_types)

    def _advance(self, x: Tensor, hidden: Tensor, dropout: bool) -> Tensor:
        layers = []
        for i, cell in enumerate(self.cells):
            x = cell(x, hidden[:, i])
            if dropout and self.config.dropout_hidden > 0:
                x = F.dropout(x, self.config.dropout_hidden)
            layers.append(x)
        return torch.stack(layers, dim=1)


def _glorot_uniform_(tensor: Tensor, generator: torch.Generator | None) -> None:
    sigma = math.sqrt(6.0 / (tensor.shape[0] + tensor.shape[1]))
    tensor.uniform_(-sigma, sigma, generator=generator)


def extend_items(model: GRU4Rec, n_items: int, generator: torch.Generator | None = None) -> GRU4Rec:
    """A copy of ``model`` scoring ``n_items`` items: existing rows kept, new rows freshly initialised."""
    old = model.config.n_items
    if n_items < old:
        raise ValueError(f"cannot shrink the item vocabulary from {old} to {n_items}")
    config = ModelConfig(**{**model.config.to_dict(), "n_items": n_items})
    extended = GRU4Rec(config, generator)
    state = extended.state_dict()
    for name, value in model.state_dict().items():
        if name in model.sparse_parameter_names():
            state[name][:old] = value
        else:
            state[name] = value.clone()
    extended.load_state_dict(state)
    return extended
