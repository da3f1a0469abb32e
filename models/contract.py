"""What the streamer serves: the written contract between a trained model and the worker.

A :class:`SequenceModel` keeps a fixed-size state per user and advances it one event at a time, in
batches; the score of item ``i`` for a state is ``query(state) · item_vectors[i] + item_bias[i]``,
plus ``seen_bonus * seen_decay ** age`` if the item is among the session's items so far, ``age`` being
the number of events since its latest one (0: the item of the latest event); once per item.
That inner-product form is what lets a :class:`Scorer` rank a catalog without materialising every
score (an approximate index can search the item vectors). The worker only ever calls these members,
so a new architecture that provides them (and is registered in :data:`models.artifact.ARCHITECTURES`)
serves without changes to the streamer.
"""

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass(frozen=True)
class ItemTable:
    """The catalog as a scorer sees it: one vector and one bias per item index."""

    vectors: Tensor  # [n_items, d]
    bias: Tensor  # [n_items]
    seen_bonus: float = 0.0  # added to the score of each item the session has had
    seen_decay: float = 1.0  # times this for each event since the item's latest

    @property
    def n_items(self) -> int:
        return len(self.bias)


class SequenceModel(Protocol):
    n_items: int
    state_shape: tuple[int, ...]  # one user's state

    def zero_state(self, batch: int) -> Tensor:
        """``batch`` states before any event: ``[batch, *state_shape]``."""
        ...

    def step(self, hidden: Tensor, items: Tensor, event_types: Tensor) -> Tensor:
        """States advanced by one event each (item index and event type per row). A row's result
        must not depend on the other rows of the batch."""
        ...

    def query(self, hidden: Tensor) -> Tensor:
        """The vectors ``[B, d]`` that states are scored with against :meth:`item_table`."""
        ...

    def item_table(self) -> ItemTable: ...

    def scores(self, hidden: Tensor) -> Tensor:
        """Scores of every item, ``[B, n_items]`` (evaluation; serving goes through a scorer)."""
        ...


class Scorer(Protocol):
    def top_k(
        self,
        queries: Tensor,
        k: int,
        exclude: Tensor | None = None,
        unavailable: Tensor | None = None,
        seen: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` best items per query row, best first: ``(scores [B, k], item indices [B, k])``,
        ``k`` capped at the catalog's size.

        ``exclude``: item indices never to return, per row (``[B]`` or ``[B, m]``, padded with -1;
        the current item, items bought or seen in the session). ``unavailable``: item indices never
        to return for any row (a sorted int64 tensor ``[u]``: sold-out items). Both are left out
        before the cut, so a row gets ``k`` items whenever the catalog has ``k`` items left for it;
        a row that cannot fill ``k`` ends with entries whose score is -inf and whose item index is
        -1, which callers drop. ``seen``: the items of each row's session so far (``[B, m]``, oldest
        first and right-aligned: the last column is the latest event; -1 pads and stands for unknown
        items; repeats allowed), whose scores get their seen bonus before the cut."""
        ...
