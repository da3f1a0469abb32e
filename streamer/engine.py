"""Applying a micro-batch of events to user states: the model step, scoring and list building.

Pure computation: no Kafka, no Faust. The agent reads the states of the batch's users from the
table, calls :meth:`Recommender.apply`, publishes what it returns, then writes the new states.

Events of one user within a batch are applied in order. The batch is cut into "waves": wave j holds
the j-th event of every user who has one, so each wave is one batched GRU step and one batched
top-K, and a batch costs as many tensor operations as its busiest user has events (usually one).
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring

import numpy as np
import torch

from models.artifact import ModelArtifact
from models.scoring import ExactScorer
from schemas.dead_letters import DeadLetter
from schemas.recommendations import Recommendation
from streamer.records import ParsedEvent, dead_letter
from streamer.sessions import starts_new_session
from streamer.state import UserState


@dataclass(frozen=True)
class ServingPolicy:
    top_k: int = 20
    exclude_current_item: bool = False
    session_mode: str = "session"  # "session": zero state after a gap or a new session id; "user": carry over
    session_gap_s: float = 1800.0
    recent_items: int = 200
    recent_event_ids: int = 32


@dataclass
class BatchResult:
    lists: list[tuple[str, bytes]] = field(default_factory=list)  # (user id, Recommendation bytes)
    states: dict[str, UserState] = field(default_factory=dict)  # users whose state changed
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0  # redelivered events that were applied before and were skipped
    repeats: int = 0  # events whose event id the user sent before: listed again, not applied again
    reencoded: int = 0  # states carried over from another model version
    new_sessions: int = 0

    def recommendations(self) -> list[Recommendation]:
        """The lists, decoded (the hot path only ever needs their bytes)."""
        return [Recommendation.from_bytes(value) for _, value in self.lists]


class Recommender:
    """Serves one model artifact under one policy."""

    def __init__(self, artifact: ModelArtifact, policy: ServingPolicy) -> None:
        self.artifact = artifact
        self.policy = policy
        self.version = artifact.version
        self._model = artifact.model
        # An excluded item must not come back with a -inf score when k covers the whole catalog.
        self._k = min(policy.top_k, artifact.model.n_items - int(policy.exclude_current_item))
        self._scorer = ExactScorer(artifact.model.item_table())
        self._encoder = ListEncoder(artifact.item_ids, artifact.version)

    def apply(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> BatchResult:
        """Apply ``events`` (in consumption order) on top of ``states`` (user id -> stored state)."""
        result = BatchResult()
        pending: dict[str, list[_Pending]] = {}
        working: dict[str, UserState] = {}
        stale: list[str] = []
        for parsed in events:
            user, record = parsed.event.user_id, parsed.record
            state = working.get(user) or states.get(user)
            if state is not None and state.already_applied(record.topic, record.partition, record.offset):
                result.duplicates += 1  # its list went out when it was applied
                continue
            if parsed.event.item_id not in self.artifact.item_index:
                reason = f"item {parsed.event.item_id!r} is not in the vocabulary of model {self.version}"
                result.dead_letters.append(dead_letter(record, "unknown_item", reason, time.time()))
                continue
            if user not in working:
                working[user], is_stale = self._current_state(state)
                if is_stale:
                    stale.append(user)
            current = working[user]
            repeat = current.seen_event(parsed.event.event_id)
            if repeat:
                result.repeats += 1
            else:
                current.remember_event(parsed.event.event_id, self.policy.recent_event_ids)
            pending.setdefault(user, []).append(_Pending(parsed, repeat))
            # Mark as applied now so a duplicate later in the same batch is skipped too.
            current.mark_applied(record.topic, record.partition, record.offset)

        if stale:  # states another model wrote: re-encoded together, one batched step per position
            histories = [(working[user].recent_items, working[user].recent_types) for user in stale]
            for user, hidden in zip(stale, self.reencode_many(histories), strict=True):
                working[user].hidden = hidden
            result.reencoded += len(stale)
        wave = 0
        while True:
            rows = [(user, evs[wave]) for user, evs in pending.items() if len(evs) > wave]
            if not rows:
                break
            self._apply_wave(rows, working, result)
            wave += 1
        result.states = {user: working[user] for user in pending}
        return result

    def _current_state(self, stored: UserState | None) -> tuple[UserState, bool]:
        """A working copy of ``stored`` for this model, and whether another model wrote it (then its
        hidden state still has to be re-encoded from its recent items)."""
        if stored is None:
            return UserState(hidden=self._zero_hidden(), model_version=self.version), False
        state = UserState(**{**stored.__dict__, "applied": dict(stored.applied)})
        if stored.model_version == self.version:
            return state, False
        state.model_version = self.version
        return state, True

    def reencode_many(self, histories: list[tuple[list[str], list[int]]]) -> list[np.ndarray]:
        """The hidden states this model reaches from zero over the known items of each (item ids,
        event types) history; position j of every history long enough is one batched GRU step."""
        index = self.artifact.item_index
        known = [
            [(index[i], t) for i, t in zip(items, types, strict=True) if i in index]
            for items, types in histories
        ]
        longest_first = sorted((n for n in range(len(known)) if known[n]), key=lambda n: -len(known[n]))
        hiddens = [self._zero_hidden() for _ in known]
        if not longest_first:
            return hiddens
        with torch.inference_mode():
            hidden = self._model.zero_state(len(longest_first))
            for position in range(len(known[longest_first[0]])):
                rows = [known[n][position] for n in longest_first if len(known[n]) > position]  # a prefix
                items, types = torch.tensor(rows).T
                hidden[: len(rows)] = self._model.step(hidden[: len(rows)], items, types)
        for row, n in enumerate(longest_first):
            hiddens[n] = hidden[row].numpy().astype(np.float32, copy=True)
        return hiddens

    def _zero_hidden(self) -> np.ndarray:
        return np.zeros(self._model.state_shape, dtype=np.float32)

    def _apply_wave(
        self, rows: list[tuple[str, "_Pending"]], working: dict[str, UserState], result: BatchResult
    ) -> None:
        """One event per user: step the users' states (a repeated event leaves its state as it is),
        then score every row."""
        stepping = [(n, user, p.parsed) for n, (user, p) in enumerate(rows) if not p.repeat]
        for _, user, parsed in stepping:
            if self._starts_new_session(working[user], parsed):
                _reset_session(working[user], self._zero_hidden())
                result.new_sessions += 1
        index = self.artifact.item_index
        hidden = torch.from_numpy(np.stack([working[user].hidden for user, _ in rows]))
        if stepping:
            at = torch.tensor([n for n, _, _ in stepping])
            items = torch.tensor([index[parsed.event.item_id] for _, _, parsed in stepping])
            types = torch.tensor([int(parsed.event.event_type) for _, _, parsed in stepping])
            hidden[at] = self._model.step(hidden[at], items, types)
            hidden_np = hidden.numpy()
            for n, user, parsed in stepping:
                self._record(working[user], parsed, hidden_np[n])
        events = [p.parsed for _, p in rows]
        exclude = None
        if self.policy.exclude_current_item:
            exclude = torch.tensor([index[parsed.event.item_id] for parsed in events])
        scores, top = self._scorer.top_k(self._model.query(hidden), self._k, exclude)
        lists = self._encoder.encode_wave(events, top, scores, time.time())
        result.lists.extend(zip([user for user, _ in rows], lists, strict=True))

    def _starts_new_session(self, state: UserState, parsed: ParsedEvent) -> bool:
        policy = self.policy
        return state.events_seen > 0 and starts_new_session(
            parsed.event, state.session_id, state.last_event_time, policy.session_mode, policy.session_gap_s
        )

    def _record(self, state: UserState, parsed: ParsedEvent, hidden: np.ndarray) -> None:
        event = parsed.event
        state.hidden = hidden.copy()
        state.recent_items = [*state.recent_items, event.item_id][-self.policy.recent_items :]
        state.recent_types = [*state.recent_types, int(event.event_type)][-self.policy.recent_items :]
        state.last_event_time = max(state.last_event_time, event.event_time)
        state.session_id = event.session_id
        state.events_seen += 1


@dataclass(frozen=True, slots=True)
class _Pending:
    parsed: ParsedEvent
    repeat: bool  # the user sent this event id before: list it again, do not apply it again


def _reset_session(state: UserState, zero: np.ndarray) -> None:
    state.hidden = zero
    state.recent_items = []
    state.recent_types = []


class ListEncoder:
    """Lists as bytes, exactly as ``Recommendation.to_bytes()`` writes them (``json.dumps`` with compact
    separators, ``ensure_ascii=False``, scores rounded to 6 places), straight from a row of top-K
    indices and scores: no Recommendation or RankedItem objects on the hot path. The JSON of each
    item id is built once, on its first list."""

    def __init__(self, item_ids: list[str], version: str) -> None:
        self._item_ids = item_ids
        self._item_heads: list[str | None] = [None] * len(item_ids)
        self._version = encode_basestring(version)

    def encode_wave(
        self, events: list[ParsedEvent], top: torch.Tensor, scores: torch.Tensor, produced_at: float
    ) -> list[bytes]:
        """The list of each event from its row of ``top`` item indices and ``scores``."""
        if scores.dtype == torch.float32 and bool(torch.isfinite(scores).all()):
            # A float32 times 1e6 is exact in float64, so numpy's rint(x * 1e6) / 1e6 is what
            # round(x, 6) gives; done for the whole wave at once. Finite scores need no checks either.
            rounded = np.round(scores.double().numpy(), 6).tolist()
            number = repr
        else:
            rounded = [[round(score, 6) for score in row] for row in scores.tolist()]
            number = _number
        return [
            self._list(event, self._items(row_top, row_scores, number), produced_at)
            for event, row_top, row_scores in zip(events, top.tolist(), rounded, strict=True)
        ]

    def _items(self, top: list[int], scores: list[float], number: Callable[[float], str]) -> str:
        heads = self._item_heads
        parts = []
        for index, score in zip(top, scores, strict=True):
            head = heads[index]
            if head is None:
                head = heads[index] = '{"item_id":' + encode_basestring(self._item_ids[index]) + ',"score":'
            parts.append(head + number(score))
        return "},".join(parts) + "}" if parts else ""

    def _list(self, parsed: ParsedEvent, items: str, produced_at: float) -> bytes:
        event, record = parsed.event, parsed.record
        return (
            f'{{"user_id":{encode_basestring(event.user_id)},"items":[{items}],'
            f'"model_version":{self._version},'
            f'"event_id":{encode_basestring(event.event_id)},"event_time":{_number(event.event_time)},'
            f'"produced_at":{_number(produced_at)},"source":{{"topic":{encode_basestring(record.topic)},'
            f'"partition":{_number(record.partition)},"offset":{_number(record.offset)}}}}}'
        ).encode()


def _number(value: float | int) -> str:
    """A number as ``json.dumps`` writes it (its float repr, NaN and +-Infinity included)."""
    if value.__class__ is float:
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value.__class__ is int:
        return repr(value)
    return json.dumps(value)
