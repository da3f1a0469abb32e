"""Scorers: from the query vectors of user states to top-K item lists (see :class:`models.contract.Scorer`).

:class:`ExactScorer` scores the whole catalog and ranks it exactly. It gives a row the same bits
whatever the other rows and however many (blocks of :data:`models.serving_blocks.SERVING_BLOCK` rows).
"""

from collections.abc import Callable
from typing import Generic, TypeVar

import torch
from torch import Tensor

from models.contract import ItemTable, SequenceModel
from models.serving_blocks import SERVING_BLOCK, blocks, padded

# Large catalogs: top-K over block maxima first. On 50,000 items this takes 25-45 µs per row on one
# thread against 100-130 µs for one torch.topk over the whole row, and it is exact: each of a row's
# k best items lies in a block whose maximum is at least the k-th best score (or in the partial last
# block, always a candidate), and at most k blocks have such a maximum.
TOP_K_BLOCK = 128
TOP_K_BLOCKS_FROM = 16_384

T = TypeVar("T")


class PerUnavailableSet(Generic[T]):
    """What ``make`` derives from the unavailable items, made again only when the set changes: the
    catalog changes it rarely, and comparing 100,000 indices costs ~20 µs where remaking a masked
    bias or a faiss selector for a million items costs milliseconds."""

    def __init__(self, make: Callable[[Tensor], T]) -> None:
        self._make = make
        self._last: tuple[Tensor, T] | None = None

    def __call__(self, unavailable: Tensor) -> T:
        last = self._last  # one read: another thread may replace it meanwhile
        if last is None or not torch.equal(last[0], unavailable):
            last = (unavailable.clone(), self._make(unavailable))
            self._last = last
        return last[1]


class ExactScorer:
    def __init__(self, items: ItemTable) -> None:
        self.items = items
        self.n_items = items.n_items
        # -inf in the bias removes an unavailable item from every row for free: addmm adds it anyway.
        self._masked_bias = PerUnavailableSet(
            lambda unavailable: items.bias.index_fill(0, unavailable, float("-inf"))
        )

    @torch.inference_mode()
    def scores(self, queries: Tensor) -> Tensor:
        """Scores of all items, ``[B, n_items]``."""
        rows = padded(queries)
        out = queries.new_empty(len(rows), self.n_items)
        for block in blocks(len(queries)):
            self._score(rows[block], self.items.bias, out=out[block])
        return out[: len(queries)]

    @torch.inference_mode()
    def top_k(
        self,
        queries: Tensor,
        k: int,
        exclude: Tensor | None = None,
        unavailable: Tensor | None = None,
        seen: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        k = min(k, self.n_items)
        bonus = self.items.seen_bonus if seen is not None else 0.0
        decay = self.items.seen_decay
        rows = padded(queries)
        bias = self.items.bias if unavailable is None else self._masked_bias(unavailable)
        top_scores = queries.new_empty(len(queries), k)
        top_items = torch.empty(len(queries), k, dtype=torch.long)
        block_scores = queries.new_empty(SERVING_BLOCK, self.n_items)
        if exclude is not None and exclude.dim() == 1:
            exclude = exclude.unsqueeze(1)
        # Block by block, so that a block's scores are ranked while still in the cache (50,000 items,
        # 64 / 256 rows: 270 / 350 µs per event, against 310 / 430 scoring all rows first).
        for block in blocks(len(queries)):
            scores = self._score(rows[block], bias, out=block_scores)[: len(queries[block])]
            if bonus:
                add_seen_bonus_(scores, seen[block], bonus, decay)
            if exclude is not None:
                _exclude_(scores, exclude[block])
            top_scores[block], top_items[block] = self._rank(scores, k)
        return top_scores, unlisted_where_no_score_(top_items, top_scores)

    def _score(self, block: Tensor, bias: Tensor, out: Tensor) -> Tensor:
        return torch.addmm(bias, block, self.items.vectors.T, out=out)

    def _rank(self, scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if self.n_items >= TOP_K_BLOCKS_FROM and k * TOP_K_BLOCK * 4 <= self.n_items:
            return top_k_by_blocks(scores, k)
        return torch.topk(scores, k, dim=1)


def add_seen_bonus_(scores: Tensor, seen: Tensor, bonus: float, decay: float = 1.0) -> Tensor:
    """Add to ``scores[r, i]``, once for each item ``i >= 0`` in ``seen[r]`` however often it is there,
    :func:`seen_bonuses` (``seen`` right-aligned: its last column is the latest event)."""
    items, ages = latest_seen(seen)
    added = seen_bonuses(items, ages, bonus, decay).to(scores.dtype)
    rows, columns = torch.nonzero(items >= 0, as_tuple=True)
    return scores.index_put_((rows, items[rows, columns]), added[rows, columns], accumulate=True)


def latest_seen(seen: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's distinct items of ``seen`` (``[B, m]``, right-aligned: column ``m - 1`` is the latest
    event; -1 pads and stands for unknown items) with -1 for every repeat and padding, and beside each
    the number of events since its latest occurrence (0: the latest event's item)."""
    width = seen.shape[1]
    ages = torch.arange(width - 1, -1, -1).expand_as(seen)
    # Sorted by item, and within an item latest first: the first of each run is its latest occurrence.
    order = (seen * width + ages).sort(1).indices
    items, ages = seen.gather(1, order), ages.gather(1, order)
    items[:, 1:].masked_fill_(items[:, 1:] == items[:, :-1], -1)
    return items, ages


def seen_bonuses(items: Tensor, ages: Tensor, bonus: float, decay: float) -> Tensor:
    """The bonus of each of :func:`latest_seen`'s items: ``bonus * decay ** age`` (0 where -1)."""
    return (bonus * decay**ages).masked_fill_(items < 0, 0.0)


def exact_top_k(
    model: SequenceModel, hidden: Tensor, k: int, exclude: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The exact top-K of ``model``'s states ``hidden``, for evaluation, tests and benchmarks."""
    return ExactScorer(model.item_table()).top_k(model.query(hidden), k, exclude)


def unlisted_where_no_score_(items: Tensor, scores: Tensor) -> Tensor:
    """Item index -1 wherever the score is -inf (a row that ran out of items): such an entry names an
    excluded or unavailable item otherwise, which a careless caller could serve."""
    return items.masked_fill_(scores == float("-inf"), -1)


def _exclude_(scores: Tensor, exclude: Tensor) -> None:
    """Set ``scores[r, exclude[r, j]]`` to -inf wherever ``exclude[r, j] >= 0``."""
    rows, columns = torch.nonzero(exclude >= 0, as_tuple=True)
    scores[rows, exclude[rows, columns]] = float("-inf")


def top_k_by_blocks(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    rows, n = scores.shape
    scores = scores.contiguous()
    n_blocks, tail = divmod(n, TOP_K_BLOCK)
    view = scores.as_strided((rows, n_blocks, TOP_K_BLOCK), (n, TOP_K_BLOCK, 1))  # a view, no copy
    _, best_blocks = torch.topk(view.amax(dim=2), k, dim=1)
    columns = (best_blocks.unsqueeze(2) * TOP_K_BLOCK + torch.arange(TOP_K_BLOCK)).reshape(rows, -1)
    if tail:  # the last, partial block is always a candidate
        columns = torch.cat([columns, torch.arange(n - tail, n).expand(rows, -1)], dim=1)
    top_scores, at = torch.topk(scores.gather(1, columns), k, dim=1)
    return top_scores, columns.gather(1, at)
