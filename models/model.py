"""GRU4Rec: a GRU over a session's events that scores every item as the next one.

Input of a step: the item's embedding plus a learned vector for the event type. With the default
shared ("constrained") embedding the input embedding of an item is its row of the output item matrix;
otherwise items have a separate input embedding. The click vector is fixed at zero, so on click-only
data the model is exactly the plain GRU4Rec. One or more GRU layers follow; the score of item ``i`` is
``h · W[i] + b[i]`` with ``h`` the top layer's state.

A user's state is ``[n_layers, hidden]``; batches of states are ``[B, n_layers, hidden]``. Training
(:mod:`models.training_step`) uses the same parameters and arithmetic, plus dropout.
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
    # Added to the score of the items the session has had (0: plain GRU4Rec). Fitted after training
    # on validation sessions by ``streamrec tune``: on retailrocket a third of the next items are
    # ones the session has seen, which the GRU alone ranks too low (README, "Models").
    seen_bonus: float = 0.0
    # The bonus of an item seen k events ago is seen_bonus * seen_decay ** k (1: the same for all), also
    # fitted by tune: on retailrocket the latest items are the likeliest to come back.
    seen_decay: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_items", "hidden", "n_layers", "n_event_types"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.embedding, int) and self.embedding >= 0):
            raise ValueError(f"embedding must be an integer >= 0, got {self.embedding!r}")
        for name in ("dropout_embed", "dropout_hidden"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not (type(self.seen_bonus) in (int, float) and math.isfinite(self.seen_bonus)):
            raise ValueError(f"seen_bonus must be a finite number, got {self.seen_bonus!r}")
        if not (type(self.seen_decay) in (int, float) and 0 < self.seen_decay <= 1):
            raise ValueError(f"seen_decay must be a number in (0, 1], got {self.seen_decay!r}")

    @property
    def input_size(self) -> int:
        return self.embedding or self.hidden

    def to_dict(self) -> dict:
        """As stored in an artifact's manifest. Without a bonus there is no ``seen_bonus`` key, nor a
        ``seen_decay`` key at 1, so that workers of earlier versions, which refuse unknown fields, still
        load the models they can serve."""
        fields = asdict(self)
        if not self.seen_bonus:
            del fields["seen_bonus"]
        if self.seen_decay == 1:
            del fields["seen_decay"]
        return fields


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
        """Parameters that are only ever updated row-sparsely (see :mod:`models.sparse`)."""
        return {"item_weight", "item_bias"} | ({"input_weight"} if self.input_weight is not None else set())

    # --- inference API (the streamer's hot path) ------------------------------------------------

    def zero_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, *self.state_shape)

    # step (like the scorers) gives a row the same bits whatever the other rows and however many: its
    # matrix products run on blocks of exactly SERVING_BLOCK rows (models.serving_blocks says why).

    @torch.inference_mode()
    def step(self, hidden: Tensor, items: Tensor, event_types: Tensor) -> Tensor:
        """Advance ``[B, n_layers, hidden]`` states by one event each; no dropout, no autograd."""
        table = self.item_weight if self.input_weight is None else self.input_weight
        x = padded(self.add_event_vectors(table.index_select(0, items), event_types))
        padded_hidden = padded(hidden)
        advanced = torch.empty_like(padded_hidden)
        for block in blocks(len(hidden)):
            advanced[block] = self._advance(x[block], padded_hidden[block])
        return advanced[: len(hidden)]

    def query(self, hidden: Tensor) -> Tensor:
        """The top layer of ``[B, n_layers, hidden]`` states: what items are scored against."""
        return hidden[:, -1]

    def item_table(self) -> ItemTable:
        return ItemTable(self.item_weight, self.item_bias, self.config.seen_bonus, self.config.seen_decay)

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

    def add_event_vectors(self, x: Tensor, event_types: Tensor | None) -> Tensor:
        """Input embeddings ``x`` plus their events' type vectors (``None``: all clicks, which add zero)."""
        if event_types is None:
            return x
        table = F.pad(self.event_weight, (0, 0, 1, 0))  # prepend the zero click vector
        return x + table.index_select(0, event_types)

    def _advance(self, x: Tensor, hidden: Tensor) -> Tensor:
        layers = []
        for i, cell in enumerate(self.cells):
            x = cell(x, hidden[:, i])
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
