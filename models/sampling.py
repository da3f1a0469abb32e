"""Negative sampling: item indices drawn with probability proportional to popularity ** alpha.

Drawing per step is slow, so samples are generated in large chunks (like the reference's sample
cache). Draws use Vose's alias method, three vectorised operations per chunk, about three times
faster than inverting the cumulative distribution with a binary search.
"""

import numpy as np
import torch
from torch import Tensor

CHUNK_SAMPLES = 1 << 21


class NegativeSampler:
    def __init__(self, counts: Tensor, n_sample: int, alpha: float, generator: torch.Generator):
        if n_sample <= 0:
            raise ValueError("n_sample must be positive")
        weights = counts.double().numpy() ** alpha
        if not weights.sum() > 0:
            raise ValueError("no item has a positive count to sample from")
        self.keep, self.alias = alias_table(weights / weights.sum())
        self.n_sample = n_sample
        self.generator = generator
        self.chunk_steps = max(1, CHUNK_SAMPLES // n_sample)
        self._chunk = torch.empty(0, n_sample, dtype=torch.int64)
        self._next = 0

    def __call__(self) -> Tensor:
        """The next ``n_sample`` negatives, shared by all rows of one mini-batch."""
        if self._next == len(self._chunk):
            self._refill()
        sample = self._chunk[self._next]
        self._next += 1
        return sample

    def _refill(self) -> None:
        size = self.chunk_steps * self.n_sample
        slot = torch.randint(len(self.keep), (size,), generator=self.generator)
        coin = torch.rand(size, generator=self.generator)
        # index_select, not keep[slot]: 6x faster for these 2M-element gathers (the same draws)
        chosen = torch.where(coin < self.keep.index_select(0, slot), slot, self.alias.index_select(0, slot))
        self._chunk = chosen.view(self.chunk_steps, self.n_sample)
        self._next = 0


def alias_table(probs: np.ndarray) -> tuple[Tensor, Tensor]:
    """Vose's alias table: draw slot ``i`` uniformly, keep item ``i`` with probability ``keep[i]``, else
    take item ``alias[i]``.

    Each slot holds ``1/n`` of probability mass: its own item's share ``probs[i]`` (if below ``1/n``)
    topped up with mass from an item that has more than ``1/n``.
    """
    n = len(probs)
    mass = probs * n
    keep = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if mass[i] < 1.0]
    large = [i for i in range(n) if mass[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        keep[s], alias[s] = mass[s], g
        mass[g] -= 1.0 - mass[s]
        (small if mass[g] < 1.0 else large).append(g)
    # Slots left in either list hold (up to rounding) exactly 1/n: they keep their own item.
    return torch.from_numpy(keep).float(), torch.from_numpy(alias).long()
