"""The chaos drill's audit: every input record against what the workers published and stored.

The clean run is the same code without crashes: the serving engine applied in-process, one record
at a time, to the sequencing topic in log order (the order the workers had to apply). The audit
reads every topic from its beginning and checks that

* every record of the input topics ended as exactly one distinct list or one distinct dead letter
  (re-sent copies after a crash must be identical; a list may not also have a dead letter);
* every list equals the clean run's byte for byte, except ``produced_at``;
* every user's final state in the changelog equals the clean run's, byte for byte.
"""

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from models.artifact import ModelArtifact
from schemas.dead_letters import DeadLetter
from streamer.common.settings import Settings
from streamer.worker.engine import Recommender
from streamer.worker.policy import serving_policy
from streamer.worker.records import InputRecord, ParsedEvent, parse_record
from streamer.worker.sequencing import decode_frame, unframe
from streamer.worker.state import UserState

Position = tuple[str, int, int]  # topic, partition, offset
_PRODUCED_AT = re.compile(rb'"produced_at":[^,]+,')


def without_produced_at(value: bytes) -> bytes:
    return _PRODUCED_AT.sub(b"", value, count=1)


@dataclass
class AuditReport:
    input_records: int = 0
    valid_events: int = 0
    lists: int = 0
    lists_resent: int = 0
    dead_letters: int = 0
    dead_letters_resent: int = 0
    repeated_event_ids: int = 0
    missing: list[Position] = field(default_factory=list)
    missing_causes: Counter[str] = field(default_factory=Counter)
    differing: list[str] = field(default_factory=list)
    states: int = 0
    states_differing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.differing or self.states_differing)

    def lines(self) -> list[str]:
        return [
            f"input records            {self.input_records}",
            f"  valid events           {self.valid_events}",
            f"  repeated event ids     {self.repeated_event_ids}",
            f"lists (distinct)         {self.lists}  (re-sent copies: {self.lists_resent})",
            f"dead letters (distinct)  {self.dead_letters}  (re-sent copies: {self.dead_letters_resent})",
            f"missing                  {len(self.missing)}  {self.missing[:5] or ''}",
            f"  why                    {dict(self.missing_causes) or ''}",
            f"differing                {len(self.differing)}  {self.differing[:3] or ''}",
            f"states compared          {self.states}",
            f"states differing         {len(self.states_differing)}  {self.states_differing[:5] or ''}",
        ]


def audit(
    settings: Settings,
    artifact: ModelArtifact,
    inputs: list[InputRecord],
    sequenced: list[InputRecord],
    lists: list[bytes],
    dead_letters: list[bytes],
    changelog: dict[bytes, bytes],
) -> AuditReport:
    """Check the published ``lists``, ``dead_letters`` and ``changelog`` against a clean run."""
    report = AuditReport(input_records=len(inputs))
    expected_lists, expected_letters, states, repeats = clean_run(settings, artifact, inputs, sequenced)
    report.repeated_event_ids = repeats
    forwarded = {_origin(record) for record in sequenced}

    listed: defaultdict[Position, set[bytes]] = defaultdict(set)
    for value in lists:
        body = without_produced_at(value)
        listed[_source_of_list(body)].add(body)
    report.lists_resent = len(lists) - sum(len(copies) for copies in listed.values())
    lettered: defaultdict[Position, set[tuple[str, str]]] = defaultdict(set)
    for value in dead_letters:
        letter = DeadLetter.from_bytes(value)
        lettered[(letter.source.topic, letter.source.partition, letter.source.offset)].add(
            (letter.reason, letter.detail)
        )
    report.dead_letters_resent = len(dead_letters) - sum(len(copies) for copies in lettered.values())

    for record in inputs:
        position = (record.topic, record.partition, record.offset)
        got_lists, got_letters = listed.get(position, set()), lettered.get(position, set())
        report.lists += len(got_lists)
        report.dead_letters += len(got_letters)
        if position in expected_lists:
            report.valid_events += 1
        if not got_lists and not got_letters:
            report.missing.append(position)
            report.missing_causes[_why_missing(position, forwarded, expected_lists, expected_letters)] += 1
        elif len(got_lists) + len(got_letters) > 1:
            report.differing.append(f"{position}: {len(got_lists)} lists, {len(got_letters)} dead letters")
        elif got_lists and got_lists != {expected_lists.get(position)}:
            difference = _first_difference(got_lists.pop(), expected_lists.get(position))
            report.differing.append(f"{position}: list differs from the clean run's {difference}")
        elif got_letters and {reason for reason, _ in got_letters} != {expected_letters.get(position)}:
            expected = expected_letters.get(position)
            report.differing.append(f"{position}: dead letter {got_letters}, expected {expected}")

    report.states = len(states)
    for user, state in states.items():
        stored = changelog.get(user.encode())
        if stored is None or stored != state.to_bytes():
            report.states_differing.append(user)
    return report


def clean_run(
    settings: Settings, artifact: ModelArtifact, inputs: list[InputRecord], sequenced: list[InputRecord]
) -> tuple[dict[Position, bytes], dict[Position, str], dict[str, UserState], int]:
    """The lists (without ``produced_at``), dead-letter reasons and final states that applying the
    sequencing topic in order, one record at a time, gives; and how many events were repeats."""
    kinds, now = settings.topic_kinds(), time.time()
    letters: dict[Position, str] = {}
    for record in inputs:  # the router's verdicts
        outcome = parse_record(record, kinds[record.topic], now, settings.worker.max_future_skew_s)
        if isinstance(outcome, DeadLetter):
            letters[(record.topic, record.partition, record.offset)] = outcome.reason
    recommender = Recommender(artifact, serving_policy(settings))
    lists: dict[Position, bytes] = {}
    states: dict[str, UserState] = {}
    repeats = 0
    for record in sequenced:
        outcome = unframe(record, settings.topics.partitions, kinds, now)
        if isinstance(outcome, DeadLetter):
            letters[(outcome.source.topic, outcome.source.partition, outcome.source.offset)] = outcome.reason
            continue
        assert isinstance(outcome, ParsedEvent)
        user = outcome.event.user_id
        result = recommender.apply([outcome], {user: states.get(user)})
        states.update(result.states)
        repeats += result.repeats
        for letter in result.dead_letters:
            letters[(letter.source.topic, letter.source.partition, letter.source.offset)] = letter.reason
        for _, value in result.lists:
            body = without_produced_at(value)
            lists[_source_of_list(body)] = body
    return lists, letters, states, repeats


def _why_missing(
    position: Position,
    forwarded: set[Position],
    expected_lists: dict[Position, bytes],
    expected_letters: dict[Position, str],
) -> str:
    """Where a record with neither a list nor a dead letter was lost: by the router, in the order
    of the sequencing topic, or by the workers applying it."""
    if position not in forwarded:
        return "never forwarded to the sequencing topic"
    if position not in expected_lists and position not in expected_letters:
        return "forwarded after a later record of its user and input partition"
    return "forwarded in order, never listed"


def _origin(record: InputRecord) -> Position:
    origin = decode_frame(record.value)
    return origin.topic, origin.partition, origin.offset


def _first_difference(got: bytes, expected: bytes | None) -> str:
    if expected is None:
        return "the clean run has no list for it"
    at = next(
        (n for n, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
        min(len(got), len(expected)),
    )
    return f"at byte {at}: {got[max(0, at - 30) : at + 30]!r} vs {expected[max(0, at - 30) : at + 30]!r}"


def _source_of_list(body: bytes) -> Position:
    source = re.search(rb'"source":\{"topic":"(.*?)","partition":(\d+),"offset":(\d+)\}', body)
    assert source is not None, body[:200]
    return source.group(1).decode(), int(source.group(2)), int(source.group(3))
