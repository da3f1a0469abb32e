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
    value: bytes

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
    """Validate one record read from a topic carrying events of ``topic_kind``."""
    value = record.value if record.value is not None else b""
    try:
        event = Event.from_bytes(value, topic_kind, now=now, max_future_skew_s=max_future_skew_s)
    except InvalidMessage as exc:
        return dead_letter(record, exc.reason, exc.detail, now)
    return ParsedEvent(event, record)
