"""Kafka input records and their first arrow: raw bytes -> a validated event or a dead letter."""

from dataclasses import dataclass

from schemas.dead_letters import DeadLetter
from schemas.errors import InvalidMessage
from schemas.events import Event
from schemas.recommendations import SourcePosition


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One message as consumed, before any interpretation."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a record with a null value (a tombstone)

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event: Event
    record: InputRecord


def dead_letter(record: InputRecord, reason: str, detail: str, now: float) -> DeadLetter:
    return DeadLetter(reason, detail, record.position, record.value, record.key, now)


def parse_record(
    record: InputRecord, topic_kind: str, now: float, max_future_skew_s: float
) -> ParsedEvent | DeadLetter:
    """Validate one record read from a topic carrying events of ``topic_kind``. Never raises: any
    input ends as an event or a dead letter."""
    if record.value is None:
        return dead_letter(record, "malformed_json", "the record has no value (null)", now)
    try:
        event = Event.from_bytes(record.value, topic_kind, now=now, max_future_skew_s=max_future_skew_s)
    except InvalidMessage as exc:
        return dead_letter(record, exc.reason, exc.detail, now)
    except Exception as exc:  # a defect of the parser: the record still gets its dead letter
        return dead_letter(record, "unprocessable", f"{type(exc).__name__}: {exc}", now)
    return ParsedEvent(event, record)
