"""When does an event start a new session? One rule, shared by the streamer (which zeroes the
hidden state) and the retrainer (which cuts its training sessions the same way)."""

from schemas.events import Event


def starts_new_session(
    event: Event, previous_session_id: str | None, previous_time: float, mode: str, gap_s: float
) -> bool:
    """For a user whose previous event had ``previous_session_id`` at ``previous_time``.

    ``mode`` "user" never cuts; "session" cuts when both events carry session ids and they differ,
    or, without ids, after more than ``gap_s`` seconds of inactivity.
    """
    if mode != "session":
        return False
    if event.session_id is not None and previous_session_id is not None:
        return event.session_id != previous_session_id
    return event.event_time - previous_time > gap_s
