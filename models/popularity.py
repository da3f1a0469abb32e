"""Recent item popularity: what is served where the model has nothing to say (an unknown user, a
state with no usable events, a shop with no model yet). Counted from training events and stored in
every artifact (:mod:`models.artifact`).

Each event adds its type's weight times ``2 ** (-age / half-life)``, its age measured back from the
newest event, so the newest events count fully and older ones fade without the cliff of a fixed
window: every item seen keeps a place in the order, so the list stays long enough after sold-out and
excluded items are skipped even when the last days were quiet.
"""

from collections.abc import Sequence

import numpy as np

from schemas.events import EventType

# The worker skips unavailable items and the user's excluded ones (up to STREAMREC_RECENT_ITEMS =
# 200 recent items, plus bought ones) from the head of the list and still needs K = 20. With 10% of
# the catalog sold out at random, 245 entries would do ((200 + 20) / 0.9); but sold-out items may
# well be the popular ones, and if the top 10% of RetailRocket's 36,968 items (3,697) were sold out
# at once, 3,697 + 200 + 20 = 3,917 would be needed. 5,000 covers that; popularity.json is then
# 150 KB and is read and checked in 13-20 ms (measured with RetailRocket's items, machine load 5).
POPULAR_ITEMS_MAX = 5_000

# Share of the next day's predictions (rsc15-100k: 6 days of training clicks, then test.tsv) whose
# item is among the 20 most popular, by half-life: 1 h 0.111, 2.4 h 0.165, 6 h 0.158, 12 h 0.144,
# 1 day 0.141, 2 days 0.118, no decay 0.089 (the "most popular" baseline). Shorter is better until
# the last hours hold too few events to rank by (30 min: 0.038), so 6 hours: near the best and on the
# safe side of that cliff, which a quieter shop reaches at longer half-lives. (RetailRocket's times
# are synthetic, one event a second: every half-life from 1 h to 2 days gives 0.021-0.026 there.)
DEFAULT_HALF_LIFE_DAYS = 0.25

# Buys and carts say more about an item than a view (the shopper chose it), but clicks are what the
# list must predict and outnumber buys ~30:1 in typical shops, so a modest weight lets conversions
# order items of similar traffic without letting a few buys outrank real demand. Not measured: no
# data set here has enough typed events (REES46 sample: 54 purchases).
EVENT_TYPE_WEIGHTS: dict[EventType, float] = {EventType.CLICK: 1.0, EventType.CART: 2.0, EventType.BUY: 3.0}

SECONDS_PER_DAY = 86_400.0


def recent_popularity(
    items: Sequence[str],
    times: Sequence[float],
    event_types: Sequence[int],
    *,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    limit: int = POPULAR_ITEMS_MAX,
) -> list[tuple[str, float]]:
    """``(item id, weight)`` of the ``limit`` most popular items, most popular first (equal weights:
    by item id), from parallel sequences of events' item ids, unix times and :class:`EventType`
    values. The newest event of a click weighs 1."""
    if half_life_days <= 0 or limit < 0:
        raise ValueError(f"half_life_days must be > 0 and limit >= 0, got {half_life_days} and {limit}")
    if not len(items) == len(times) == len(event_types):
        raise ValueError(f"{len(items)} items, {len(times)} times and {len(event_types)} event types")
    if len(items) == 0:
        return []
    ages = np.max(times) - np.asarray(times, dtype=np.float64)
    type_weights = np.array([EVENT_TYPE_WEIGHTS[EventType(t)] for t in range(len(EventType))])
    weights = type_weights[np.asarray(event_types, dtype=np.int64)] * np.exp2(
        -ages / (half_life_days * SECONDS_PER_DAY)
    )
    ids, codes = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    totals = np.bincount(codes, weights=weights, minlength=len(ids))
    order = np.lexsort((ids, -totals))[:limit]  # ids are sorted already: equal totals stay by id
    return [(str(ids[i]), float(totals[i])) for i in order]
