"""Applying a micro-batch of events to user states: the model step, scoring and list building.

Pure computation: no Kafka, no Faust. The agent reads the states of the batch's users from the
table, calls :meth:`Recommender.apply`, publishes what it returns, then writes the new states.

Events of one user within a batch are applied in order. The batch is cut into "waves": wave j holds
the j-th event of every user who has one, so each wave is one batched GRU step and one batched
top-K, and a batch costs as many tensor operations as its busiest user has events (usually one).
"""

import time
from dataclasses import dataclass, field

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

    def apply(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> BatchResult:
        """Apply ``events`` (in consumption order) on top of ``states`` (user id -> stored state)."""
        result = BatchResult()
        pending: dict[str, list[ParsedEvent]] = {}
        working: dict[str, UserState] = {}
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
                working[user], reencoded = self._current_state(state)
                result.reencoded += reencoded
            pending.setdefault(user, []).append(parsed)
            # Mark as applied now so a duplicate later in the same batch is skipped too.
            working[user].applied[parsed.record.topic] = parsed.record.offset

        wave = 0
        while True:
            rows = [(user, evs[wave]) for user, evs in pending.items() if len(evs) > wave]
            if not rows:
                break
            self._apply_wave(rows, working, result)
            wave += 1
        result.states = {user: working[user] for user in pending}
        return result

    def _current_state(self, stored: UserState | None) -> tuple[UserState, int]:
        """A working copy of ``stored`` valid for this model; re-encoded if another model wrote it."""
        if stored is None:
            return UserState(hidden=self._zero_hidden(), model_version=self.version), 0
        state = UserState(**{**stored.__dict__, "applied": dict(stored.applied)})
        if stored.model_version == self.version:
            return state, 0
        state.hidden = self.reencode(stored.recent_items, stored.recent_types)
        state.model_version = self.version
        return state, 1

    def reencode(self, item_ids: list[str], event_types: list[int]) -> np.ndarray:
        """The hidden state this model reaches from zero over the known items of ``item_ids``."""
        index = self.artifact.item_index
        known = [(index[i], t) for i, t in zip(item_ids, event_types, strict=True) if i in index]
        if not known:
            return self._zero_hidden()
        items, types = zip(*known, strict=True)
        hidden = self._model.encode(torch.tensor(items), torch.tensor(types))
        return hidden.numpy().astype(np.float32, copy=True)

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
        for row, (user, parsed) in enumerate(rows):
            self._record(working[user], parsed, hidden_np[row])
            result.recommendations.append(self._recommendation(parsed, scores[row], top[row], produced_at))

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
        self, parsed: ParsedEvent, scores: torch.Tensor, top: torch.Tensor, produced_at: float
    ) -> Recommendation:
        item_ids = self.artifact.item_ids
        items = tuple(RankedItem(item_ids[i], s) for i, s in zip(top.tolist(), scores.tolist(), strict=True))
        event = parsed.event
        return Recommendation(
            user_id=event.user_id,
            items=items,
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
