"""From the window's events to training and held-out session logs, the way the streamer sees them."""

from models.data import EventLog, events_to_tsv, parse_events
from schemas.events import Event
from streamer.common.sessions import starts_new_session

Row = tuple[str, str, float, str]  # (session key, item id, time, event type name)


def session_rows(events: list[Event], mode: str, gap_s: float) -> list[list[Row]]:
    """Cut each user's events (in time order) into sessions; sessions ordered by their start."""
    sessions: list[list[Row]] = []
    open_session: dict[str, tuple[int, Event]] = {}  # user -> (index in sessions, last event)
    for event in sorted(events, key=lambda e: e.event_time):
        current = open_session.get(event.user_id)
        if current is None or starts_new_session(
            event, current[1].session_id, current[1].event_time, mode, gap_s
        ):
            sessions.append([])
            current = (len(sessions) - 1, event)
        index = current[0]
        sessions[index].append(
            (f"{event.user_id}#{index}", event.item_id, event.event_time, event.event_type.name.lower())
        )
        open_session[event.user_id] = (index, event)
    return sessions


def split_recent(sessions: list[list[Row]], holdout: float) -> tuple[EventLog, EventLog]:
    """(training log, held-out log): the most recent ``holdout`` share of sessions is held out."""
    n_holdout = max(1, round(len(sessions) * holdout))
    train, recent = sessions[:-n_holdout], sessions[-n_holdout:]
    return _log(train), _log(recent)


def _log(sessions: list[list[Row]]) -> EventLog:
    return parse_events(events_to_tsv(row for session in sessions for row in session))
