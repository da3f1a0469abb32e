"""Business rules: which items a user's list leaves out, whatever ranks it (model or popularity).

The items come back as external ids; the ranking drops them before its top-K cut, so a list still
holds K items whenever the catalog has K left. "Now" for the bought-items window is the user's own
clock, the time of its latest event, so that the stream and the query API leave out the same items
and a replayed history gives the lists it gave live.
"""

from schemas.events import EventType
from streamer.worker.policy import ServingPolicy
from streamer.worker.state import UserState


def excluded_items(
    state: UserState | None, policy: ServingPolicy, current_item: str | None = None
) -> list[str]:
    """The items ``policy`` leaves out of the list of ``state`` (None: a new user), the item of the
    event being listed being ``current_item``."""
    excluded = [current_item] if current_item is not None and policy.exclude_current_item else []
    if state is None:
        return excluded
    if policy.exclude_session_items:
        excluded += state.recent_items
    if policy.exclude_bought_s > 0:
        since = state.last_event_time - policy.exclude_bought_s
        excluded += [item for item, at in zip(state.bought, state.bought_at, strict=True) if at >= since]
    return excluded


def remember_purchase(state: UserState, item: str, event_type: int, at: float, keep: int) -> None:
    """Keep ``item`` among the user's bought items if the event is a purchase (the newest ``keep``)."""
    if event_type == EventType.BUY:
        state.bought = [*state.bought, item][-keep:]
        state.bought_at = [*state.bought_at, at][-keep:]
