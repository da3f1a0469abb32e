"""Parsed events as a partition hands them out, and a recommender driven batch by batch."""

from schemas.events import Event, EventType
from streamer.worker.engine import BatchResult, Recommender
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.state import UserState


class Stream:
    """Hands out events with increasing offsets, as a partition would."""

    def __init__(self) -> None:
        self.offset = 0

    def event(
        self, user: str, item: int | str, t: float = 1000.0, kind=EventType.CLICK, session=None, event_id=None
    ):
        item_id = item if isinstance(item, str) else f"item-{item}"
        record = InputRecord("click", 0, self.offset, user.encode(), b"")
        self.offset += 1
        event_id = event_id or f"e{record.offset}"
        return ParsedEvent(Event(event_id, user, item_id, t, kind, session), record)


def run(
    recommender: Recommender, batches: list[list[ParsedEvent]], states: dict[str, UserState] | None = None
) -> tuple[dict[str, UserState], list[BatchResult]]:
    states = dict(states or {})
    results = []
    for batch in batches:
        result = recommender.apply(batch, {e.event.user_id: states.get(e.event.user_id) for e in batch})
        states.update(result.states)
        results.append(result)
    return states, results
