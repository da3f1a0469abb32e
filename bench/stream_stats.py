"""Figures of the streaming benchmark from raw samples: pure functions, no Kafka, no clock.

Conventions: times in milliseconds (Kafka timestamps), rates in events per second, percentiles by
linear interpolation between closest ranks (numpy's default).
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# A run "keeps up" when it delivers this share of the offered rate, every list arrives, and the
# latency of its last third is not far above that of its first third (no growing backlog).
KEEP_UP_SHARE = 0.95
GROWTH_FACTOR = 2.0
GROWTH_SLACK_MS = 25.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``; NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(latencies_ms: Sequence[float]) -> LatencySummary:
    return LatencySummary(
        count=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 50),
        p95_ms=percentile(latencies_ms, 95),
        p99_ms=percentile(latencies_ms, 99),
        max_ms=max(latencies_ms, default=math.nan),
    )


def latencies(event_ms: Sequence[int], list_ms: Sequence[int]) -> list[float]:
    """Per matched pair: list timestamp - event timestamp (never negative: both are this machine's
    clock, so a negative value can only be millisecond truncation)."""
    return [max(0.0, float(out - sent)) for sent, out in zip(event_ms, list_ms, strict=True)]


def throughput(received: int, first_event_ms: int, last_list_ms: int) -> float:
    """Lists per second from the first event's production to the last list's."""
    span_s = (last_list_ms - first_event_ms) / 1000
    return received / span_s if span_s > 0 else math.nan


def thirds(event_ms: Sequence[int], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """``values`` of the first and of the last third of the run, split by event time."""
    if not event_ms:
        return [], []
    start, end = min(event_ms), max(event_ms)
    cut1, cut2 = start + (end - start) / 3, end - (end - start) / 3
    first = [v for t, v in zip(event_ms, values, strict=True) if t <= cut1]
    last = [v for t, v in zip(event_ms, values, strict=True) if t >= cut2]
    return first, last


def keeps_up(
    offered: float, achieved: float, sent: int, received: int, first_p50: float, last_p50: float
) -> bool:
    """Whether a paced run kept up with its offered rate (see the constants above)."""
    if sent == 0 or received < sent or not achieved >= KEEP_UP_SHARE * offered:
        return False
    return last_p50 <= max(GROWTH_FACTOR * first_p50, first_p50 + GROWTH_SLACK_MS)


def sustained_rate(runs: Sequence[tuple[float, bool]]) -> float:
    """The highest offered rate kept up with, every lower rate kept up with too (a rate may have
    been run more than once: one run keeping up is enough); 0 if the lowest one failed."""
    kept: dict[float, bool] = {}
    for offered, ok in runs:
        kept[offered] = kept.get(offered, False) or ok
    sustained = 0.0
    for offered in sorted(kept):
        if not kept[offered]:
            break
        sustained = offered
    return sustained


def probe_rates(capacity: float, fixed: Sequence[float], fractions: Sequence[float]) -> list[float]:
    """Offered rates to try: the ``fixed`` ones below ``capacity`` (the unpaced throughput), then the
    ``fractions`` of it, rounded to tens, ascending and distinct."""
    rates = {float(r) for r in fixed if r < capacity}
    rates |= {float(max(10, round(capacity * f, -1))) for f in fractions}
    return sorted(rates)


@dataclass(frozen=True)
class SwapWindows:
    switch_ms: int  # event time of the first list computed by the new model
    steady: LatencySummary  # events before the announcement
    window: LatencySummary  # events from the announcement to ``after_ms`` past the switch


def swap_windows(
    event_ms: Sequence[int],
    latencies_ms: Sequence[float],
    versions: Sequence[str],
    new_version: str,
    announced_ms: int,
    after_ms: int = 2000,
    warmup_ms: int = 1000,
) -> SwapWindows | None:
    """Latency before a model swap vs around it; None if no list came from ``new_version``."""
    switched = [t for t, v in zip(event_ms, versions, strict=True) if v == new_version]
    if not switched:
        return None
    switch_ms = min(switched)
    start = min(event_ms) + warmup_ms
    pairs = list(zip(event_ms, latencies_ms, strict=True))
    steady = [lat for t, lat in pairs if start <= t < announced_ms]
    window = [lat for t, lat in pairs if announced_ms <= t <= switch_ms + after_ms]
    return SwapWindows(switch_ms, summarize(steady), summarize(window))


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan
