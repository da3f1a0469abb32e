"""Popularity: what a worker lists when the model has nothing to say (a new user, a session of items
the model does not know yet, no model at all).

The serving artifact's own list (counted by the trainer over its recent events) comes first; a
worker without one counts popularity from the events it applies, with exponential decay in event
time, so a shop that starts with no model gets lists from its first event.
"""

import heapq
import math
import time
from collections.abc import Collection, Iterable

# Items kept ranked: enough to fill a list after ~10% sold-out items and a few hundred exclusions.
RANKED_HEAD = 2_000
# The head is re-ranked after a change once this many times the last ranking's duration has passed:
# at most ~5% of a core, whether 100 items are counted (every batch) or 1M (~0.3 s, every few seconds).
RERANK_AFTER_COST = 20
# Weights grow as 2^(t / half-life); they are scaled down together before they leave float range.
_MAX_EXPONENT = 500.0


class StreamPopularity:
    """Decayed event counts per item, from the events this worker applies."""

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self._weights: dict[str, float] = {}
        self._origin: float | None = None  # event time at which an event weighs 1
        self._ranked: list[tuple[str, float]] = []
        self._ranked_at = -math.inf
        self._rank_cost = 0.0
        self._changed = False

    def add(self, item: str, event_time: float) -> None:
        if self._origin is None:
            self._origin = event_time
        exponent = (event_time - self._origin) / self.half_life_s
        if exponent > _MAX_EXPONENT:
            self._rebase(event_time)
            exponent = 0.0
        self._weights[item] = self._weights.get(item, 0.0) + 2.0**exponent
        self._changed = True

    def ranked(self) -> list[tuple[str, float]]:
        """The most popular items, most popular first, with their relative weights (the top one 1.0)."""
        now = time.monotonic()
        if self._changed and now - self._ranked_at >= RERANK_AFTER_COST * self._rank_cost:
            head = heapq.nlargest(RANKED_HEAD, self._weights.items(), key=lambda entry: entry[1])
            top = head[0][1] if head else 1.0
            self._ranked = [(item, weight / top) for item, weight in head]
            self._ranked_at, self._changed = now, False
            self._rank_cost = time.monotonic() - now
        return self._ranked

    def _rebase(self, event_time: float) -> None:
        assert self._origin is not None
        scale = 2.0 ** -((event_time - self._origin) / self.half_life_s)
        self._weights = {item: weight * scale for item, weight in self._weights.items() if weight * scale > 0}
        self._origin = event_time


def popular_list(
    ranked: Iterable[tuple[str, float]], k: int, excluded: Collection[str], unavailable: Collection[str]
) -> list[tuple[str, float]]:
    """The first ``k`` of ``ranked`` that are neither excluded nor unavailable."""
    chosen: list[tuple[str, float]] = []
    for item, weight in ranked:
        if item not in excluded and item not in unavailable:
            chosen.append((item, weight))
            if len(chosen) == k:
                break
    return chosen
