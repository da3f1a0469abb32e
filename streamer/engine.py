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
from dataclasses import dataclass, field
from json.encoder import encode_basestring

import numpy as np
import torch

from models.artifact import ModelArtifact
from schemas.dead_letters import DeadLetter
from schemas.recommendations import RankedItem, Recommendation
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


@dataclass
class BatchResult:
    recommendations: list[Recommendation] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # each list's to_bytes(), same order
    states: dict[str, UserState] = field(default_factory=dict)  # users whose state changed
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0  # redelivered events that were applied before and were skipped
    reencoded: int = 0  # states carried over from another model version
    new_sessions: int = 0


class Recommender:
    """Serves one model artifact under one policy."""

    def __init__(self, artifact: ModelArtifact, policy: ServingPolicy) -> None:
        self.artifact = artifact
        self.policy = policy
        self.version = artifact.version
        self._model = artifact.model
        # An excluded item must not come back with a -inf score when k covers the whole catalog.
        self._k = min(policy.top_k, artifact.model.n_items - int(policy.exclude_current_item))
        self._encoder = ListEncoder()

    def apply(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> BatchResult:
        """Apply ``events`` (in consumption order) on top of ``states`` (user id -> stored state)."""
        result = BatchResult()
        pending: dict[str, list[ParsedEvent]] = {}
        working: dict[str, UserState] = {}
        stale: list[str] = []
        for parsed in events:
            user = parsed.event.user_id
            state = working.get(user) or states.get(user)
            if state is not None and state.already_applied(parsed.record.topic, parsed.record.offset):
                result.duplicates += 1
                continue
            if parsed.event.item_id not in self.artifact.item_index:
                reason = f"item {parsed.event.item_id!r} is not in the vocabulary of model {self.version}"
                result.dead_letters.append(dead_letter(parsed.record, "unknown_item", reason, time.time()))
                continue
            if user not in working:
                working[user], is_stale = self._current_state(state)
                if is_stale:
                    stale.append(user)
            pending.setdefault(user, []).append(parsed)
            # Mark as applied now so a duplicate later in the same batch is skipped too.
            working[user].applied[parsed.record.topic] = parsed.record.offset

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
        self, rows: list[tuple[str, ParsedEvent]], working: dict[str, UserState], result: BatchResult
    ) -> None:
        for user, parsed in rows:
            if self._starts_new_session(working[user], parsed):
                _reset_session(working[user], self._zero_hidden())
                result.new_sessions += 1
        index = self.artifact.item_index
        items = torch.tensor([index[p.event.item_id] for _, p in rows])
        types = torch.tensor([int(p.event.event_type) for _, p in rows])
        hidden = torch.from_numpy(np.stack([working[user].hidden for user, _ in rows]))
        hidden = self._model.step(hidden, items, types)
        exclude = items if self.policy.exclude_current_item else None
        scores, top = self._model.top_k(hidden, self._k, exclude)
        hidden_np = hidden.numpy()
        produced_at = time.time()
        # One conversion per wave, not per row: .tolist() on the whole [B, k] result is far cheaper.
        for (user, parsed), row_hidden, row_scores, row_top in zip(
            rows, hidden_np, scores.tolist(), top.tolist(), strict=True
        ):
            self._record(working[user], parsed, row_hidden)
            recommendation = self._recommendation(parsed, row_scores, row_top, produced_at)
            result.recommendations.append(recommendation)
            result.encoded.append(self._encoder.encode(recommendation))

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

    def _recommendation(
        self, parsed: ParsedEvent, scores: list[float], top: list[int], produced_at: float
    ) -> Recommendation:
        item_ids = self.artifact.item_ids
        event = parsed.event
        return Recommendation(
            user_id=event.user_id,
            items=tuple(map(RankedItem, [item_ids[i] for i in top], scores)),
            model_version=self.version,
            event_id=event.event_id,
            event_time=event.event_time,
            produced_at=produced_at,
            source=parsed.record.position,
        )


def _reset_session(state: UserState, zero: np.ndarray) -> None:
    state.hidden = zero
    state.recent_items = []
    state.recent_types = []


class ListEncoder:
    """``Recommendation.to_bytes()``, byte for byte, faster: the JSON of each item's id is built once
    (on its first list), and the fields are joined by hand in the schema's order and spelling
    (``json.dumps`` with compact separators, ``ensure_ascii=False``; scores rounded to 6 places)."""

    def __init__(self) -> None:
        self._item_heads: dict[str, str] = {}  # filled as items get recommended, not all up front

    def encode(self, rec: Recommendation) -> bytes:
        heads = self._item_heads
        parts = []
        for item in rec.items:
            head = heads.get(item.item_id)
            if head is None:
                head = heads[item.item_id] = '{"item_id":' + encode_basestring(item.item_id) + ',"score":'
            parts.append(head + _number(round(item.score, 6)) + "}")
        items = ",".join(parts)
        source = rec.source
        return (
            f'{{"user_id":{encode_basestring(rec.user_id)},"items":[{items}],'
            f'"model_version":{encode_basestring(rec.model_version)},'
            f'"event_id":{encode_basestring(rec.event_id)},"event_time":{_number(rec.event_time)},'
            f'"produced_at":{_number(rec.produced_at)},"source":{{"topic":{encode_basestring(source.topic)},'
            f'"partition":{_number(source.partition)},"offset":{_number(source.offset)}}}}}'
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
