"""Session event logs: group a file's events by session, map item ids to indices, and plan
session-parallel mini-batches.

Files are read by :mod:`models.event_files`: the session TSV is tab-separated with a header naming at
least ``SessionId``, ``ItemId`` and ``Time`` (unix seconds), in any order, plus an optional
``EventType`` column holding ``click``, ``buy`` or ``cart`` (missing means click). Sessions are
ordered by their first event's time and events within a session by time, as the reference GRU4Rec
does for training.
"""

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.event_files import SESSION_TSV, EventTable, InputFormat, parse_event_table, read_event_table
from schemas.events import EventType

REQUIRED_COLUMNS = SESSION_TSV.required()
EVENT_TYPE_COLUMN = SESSION_TSV.event_type


@dataclass(frozen=True)
class EventLog:
    """Events grouped by session; session ``s`` holds events ``offsets[s]:offsets[s + 1]``."""

    offsets: np.ndarray  # int64 [n_sessions + 1]
    items: np.ndarray  # str [n_events], external item ids
    event_types: np.ndarray  # int64 [n_events], EventType values
    fingerprint: str  # sha256 of the source bytes

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1


@dataclass(frozen=True)
class EncodedSessions:
    """An event log with item indices instead of ids; events of items outside the vocabulary are gone."""

    offsets: np.ndarray  # int64 [n_sessions + 1]
    items: np.ndarray  # int64 [n_events], item indices
    event_types: np.ndarray  # int64 [n_events]

    @property
    def has_event_types(self) -> bool:
        """Whether any event is not a click (click-only data needs no event-type vectors)."""
        return bool(np.any(self.event_types != EventType.CLICK))


def read_events(path: str | Path, input_format: InputFormat | None = None) -> EventLog:
    """The events of a session TSV (gzip or not) or of an export read through ``input_format``."""
    return group_sessions(read_event_table(path, input_format))


def parse_events(data: bytes, input_format: InputFormat | None = None) -> EventLog:
    return group_sessions(parse_event_table(data, input_format))


def events_to_tsv(rows: Iterable[tuple[str, str, float, str]]) -> bytes:
    """Serialise ``(session_id, item_id, time, event_type_name)`` rows as :func:`parse_events` reads them."""
    lines = [f"{REQUIRED_COLUMNS[0]}\t{REQUIRED_COLUMNS[1]}\t{REQUIRED_COLUMNS[2]}\t{EVENT_TYPE_COLUMN}"]
    lines += [f"{s}\t{i}\t{t!r}\t{e}" for s, i, t, e in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def group_sessions(table: EventTable) -> EventLog:
    sessions = table.session_keys()
    codes_of: dict[str, int] = {}
    codes = np.fromiter((codes_of.setdefault(s, len(codes_of)) for s in sessions), np.int64, len(sessions))
    t = np.asarray(table.times, dtype=np.float64)
    start = np.full(len(codes_of), np.inf)
    np.minimum.at(start, codes, t)
    # Sort key, most significant last: session start time, session, event time, file order.
    order = np.lexsort((np.arange(len(t)), t, codes, start[codes]))
    codes = codes[order]
    boundaries = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(codes)]] if len(codes) else [[0]]).astype(np.int64)
    return EventLog(
        offsets=offsets,
        items=np.asarray(table.items, dtype=str)[order],
        event_types=np.asarray(table.event_types, dtype=np.int64)[order],
        fingerprint=table.fingerprint,
    )


def split_last_sessions(log: EventLog, share: float) -> tuple[EventLog, EventLog]:
    """(earlier sessions, the last ``share`` of sessions by start time): a validation split carved
    from training data by time, as the test split was carved from the whole."""
    if not 0 < share < 1:
        raise ValueError(f"the validation share must be between 0 and 1, got {share}")
    cut = log.n_sessions - max(1, round(log.n_sessions * share))
    if cut < 1:
        raise ValueError(f"{log.n_sessions} session(s) are too few to hold some out")
    return _sessions_slice(log, 0, cut, "earlier"), _sessions_slice(log, cut, log.n_sessions, "last")


def _sessions_slice(log: EventLog, first: int, end: int, part: str) -> EventLog:
    begin, stop = log.offsets[first], log.offsets[end]
    return EventLog(
        offsets=log.offsets[first : end + 1] - begin,
        items=log.items[begin:stop],
        event_types=log.event_types[begin:stop],
        fingerprint=hashlib.sha256(f"{log.fingerprint}:{part}:{first}:{end}".encode()).hexdigest(),
    )


def build_vocabulary(log: EventLog, base: Sequence[str] = ()) -> list[str]:
    """``base`` followed by the log's other items in order of first appearance."""
    vocabulary = list(base)
    known = set(vocabulary)
    for item in log.items:
        if item not in known:
            known.add(item)
            vocabulary.append(str(item))
    return vocabulary


def encode_sessions(log: EventLog, item_index: dict[str, int]) -> EncodedSessions:
    """Map item ids to indices, dropping events of unknown items (a session may shrink or vanish)."""
    items = np.fromiter((item_index.get(i, -1) for i in log.items), np.int64, log.n_events)
    known = items >= 0
    kept_per_session = np.add.reduceat(known.astype(np.int64), log.offsets[:-1]) if log.n_events else []
    offsets = np.concatenate([[0], np.cumsum(kept_per_session)]).astype(np.int64)
    return EncodedSessions(offsets=offsets, items=items[known], event_types=log.event_types[known])


def item_counts(sessions: EncodedSessions, n_items: int) -> np.ndarray:
    return np.bincount(sessions.items, minlength=n_items)


@dataclass(frozen=True)
class Schedule:
    """Session-parallel mini-batches.

    At step ``t`` rows ``0 .. n_active[t] - 1`` each predict one event: row ``r`` reads the event at
    position ``inputs[t, r]`` and its target is the next event of the same session. A row whose
    session ends takes the next waiting session; ``resets[t, r]`` marks that its hidden state must be
    zeroed first. Rows are sorted so that the rows still busy near the end form a prefix.
    """

    inputs: np.ndarray  # int64 [n_steps, batch]; -1 where the row is idle
    resets: np.ndarray  # bool [n_steps, batch]
    n_active: np.ndarray  # int64 [n_steps]

    @property
    def n_steps(self) -> int:
        return len(self.n_active)


def session_parallel_schedule(offsets: np.ndarray, batch_size: int) -> Schedule:
    lengths = np.diff(offsets) - 1  # predictions per session
    sessions = np.flatnonzero(lengths > 0)
    lengths = lengths[sessions]
    batch = min(batch_size, len(sessions))
    # A row takes the next session as soon as its current one ends; ties go to the lower row.
    free_rows = [(0, row) for row in range(batch)]
    row_of = np.empty(len(sessions), np.int64)
    start_of = np.empty(len(sessions), np.int64)
    for k, length in enumerate(lengths.tolist()):
        start, row = heapq.heappop(free_rows)
        row_of[k], start_of[k] = row, start
        heapq.heappush(free_rows, (start + length, row))

    row_busy_until = np.zeros(batch, np.int64)
    np.maximum.at(row_busy_until, row_of, start_of + lengths)
    row_rank = np.empty(batch, np.int64)
    row_rank[np.argsort(-row_busy_until, kind="stable")] = np.arange(batch)
    n_steps = int(row_busy_until.max()) if batch else 0

    session_of_pair = np.repeat(np.arange(len(sessions)), lengths)
    within = np.arange(len(session_of_pair)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    inputs = np.full((n_steps, batch), -1, np.int64)
    pair_rows = row_rank[row_of[session_of_pair]]
    inputs[start_of[session_of_pair] + within, pair_rows] = offsets[sessions[session_of_pair]] + within
    resets = np.zeros((n_steps, batch), bool)
    later = start_of > 0  # at step 0 every state is zero anyway
    resets[start_of[later], row_rank[row_of[later]]] = True
    n_active = (row_busy_until[None, :] > np.arange(n_steps)[:, None]).sum(axis=1)
    return Schedule(inputs=inputs, resets=resets, n_active=n_active.astype(np.int64))
