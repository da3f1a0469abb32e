"""One ordered log per user: every input event passes through the sequencing topic.

Producers place records as they like: Faust and Java clients by murmur2 of the key, librdkafka
clients (kcat, confluent-kafka for Python, Go, .NET, Node) by CRC32, null-keyed records anywhere.
A user's events can therefore arrive on several partitions of two topics, and any merge of those
logs depends on fetch timing: a batch recomputed after a crash could interleave them differently
and publish lists that differ from the ones already sent. So the worker first validates each input
record and forwards it, unchanged, to ``<app id>-sequenced`` on its user's partition (murmur2 of the
user id, as Kafka's default partitioner places a record keyed by it). That topic is the one log
the states are computed from: whatever the producers did, a user's events are applied in one order,
the same order after any crash.

A forwarded record's value is a small frame: the origin (input topic, partition, offset), the
original key (if at most :data:`MAX_FORWARDED_KEY_BYTES`; it only ends up in dead letters), and the
original value. Lists and dead letters name the origin, and each user's state
remembers the highest origin offset it applied per input partition, so a record forwarded twice
(the router crashed between forwarding and committing) is applied once.
"""

import struct
from dataclasses import dataclass

from schemas.dead_letters import DeadLetter
from streamer.worker.producing import default_partition
from streamer.worker.records import InputRecord, ParsedEvent, dead_letter, parse_record

FRAME_MAGIC = b"SQ1"
_FRAME = struct.Struct(
    "<HiqI"
)  # origin topic length, origin partition, origin offset, key length (or NO_KEY)
NO_KEY = 0xFFFFFFFF
MAX_FORWARDED_KEY_BYTES = 1024


def user_partition(user_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``user_id``."""
    return default_partition(user_id.encode(), partitions)


def encode_frame(record: InputRecord) -> bytes:
    topic = record.topic.encode()
    key = record.key if record.key is not None and len(record.key) <= MAX_FORWARDED_KEY_BYTES else None
    header = _FRAME.pack(len(topic), record.partition, record.offset, NO_KEY if key is None else len(key))
    return b"".join((FRAME_MAGIC, header, topic, key or b"", record.value))


def decode_frame(value: bytes | None) -> InputRecord:
    """The origin record of a forwarded value; ValueError if the bytes are not a frame."""
    if value is None or value[:3] != FRAME_MAGIC or len(value) < 3 + _FRAME.size:
        raise ValueError("not a sequenced-event frame")
    topic_len, partition, offset, key_len = _FRAME.unpack_from(value, 3)
    start = 3 + _FRAME.size
    topic = value[start : start + topic_len].decode()
    start += topic_len
    key = None
    if key_len != NO_KEY:
        key, start = value[start : start + key_len], start + key_len
    if start > len(value):
        raise ValueError("truncated sequenced-event frame")
    return InputRecord(topic, partition, offset, key, value[start:])


@dataclass
class Routed:
    """A batch of input records, sorted: frames to forward as (partition, key, value, timestamp ms)
    and dead letters for the records that are not valid events."""

    forwards: list[tuple[int, bytes, bytes, int | None]]
    dead_letters: list[DeadLetter]


def route(
    records: list[tuple[InputRecord, int | None]],
    topic_kinds: dict[str, str],
    partitions: int,
    now: float,
    max_future_skew_s: float,
) -> Routed:
    """Validate each (record, Kafka timestamp ms) and address the valid ones to their user's partition."""
    routed = Routed([], [])
    for record, timestamp in records:
        outcome = parse_record(record, topic_kinds[record.topic], now, max_future_skew_s)
        if isinstance(outcome, ParsedEvent):
            user = outcome.event.user_id
            routed.forwards.append(
                (user_partition(user, partitions), user.encode(), encode_frame(record), timestamp)
            )
        else:
            routed.dead_letters.append(outcome)
    return routed


def unframe(
    record: InputRecord, partitions: int, topic_kinds: dict[str, str], now: float
) -> ParsedEvent | DeadLetter:
    """The event a record of the sequencing topic carries. The router validated it already, so only
    a record that no router wrote is refused here. The time check is not repeated: the outcome never
    depends on when the record is applied."""
    try:
        origin = decode_frame(record.value)
    except (ValueError, UnicodeDecodeError) as exc:
        return dead_letter(record, "malformed_json", str(exc), now)
    kind = topic_kinds.get(origin.topic)
    if kind is None:
        return dead_letter(origin, "unprocessable", f"{origin.topic!r} is not an input topic here", now)
    outcome = parse_record(origin, kind, now, max_future_skew_s=float("inf"))
    if (
        isinstance(outcome, ParsedEvent)
        and user_partition(outcome.event.user_id, partitions) != record.partition
    ):
        detail = f"sequenced on partition {record.partition}, not its user's partition"
        return dead_letter(origin, "unprocessable", detail, now)
    return outcome
