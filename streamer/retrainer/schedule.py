"""When the retrainer trains: every so many new events or seconds, and, while no model serves, as
soon as its window first holds enough events for a first model."""

from streamer.common.settings import RetrainerSettings


def first_model_needs(settings: RetrainerSettings) -> int:
    """Events the window must hold before the first model is trained (never more than it keeps)."""
    return min(settings.first_model_events, settings.window_events)


def training_due(
    settings: RetrainerSettings,
    *,
    serving: bool,
    window_events: int,
    new_events: int,
    seconds_since_cycle: float,
) -> bool:
    """Whether to run a cycle now. ``new_events``: added since the last cycle (or ever, before the
    first), so ``window_events - new_events`` is what the window held at the last cycle.

    With no model serving, nothing is trained before the window holds :func:`first_model_needs`
    events, and the first cycle runs the moment it does; a first candidate that was refused is
    retried on the usual schedule, not on every later fetch."""
    if new_events <= 0:
        return False
    if not serving:
        needed = first_model_needs(settings)
        if window_events < needed:
            return False
        if window_events - new_events < needed:
            return True
    by_count = 0 < settings.every_events <= new_events
    by_time = 0 < settings.every_s <= seconds_since_cycle
    return by_count or by_time


def crossed_a_tenth(before: int, after: int, needed: int) -> bool:
    """Whether the window grew past another tenth of ``needed`` (for progress lines while waiting)."""
    return min(after, needed) * 10 // needed > min(before, needed) * 10 // needed
