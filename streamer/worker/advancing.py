"""Advancing user states by a micro-batch of events: no scoring, no Kafka, no Faust.

Events of one user within a batch are applied in order. The batch is cut into "waves": wave j holds
the j-th event of every user who has one, so each wave is one batched model step, and a batch costs
as many steps as its busiest user has events (usually one). An event applied before (its input
offset is at or below the user's applied offset) is skipped; an event id the user sent before is a
repeat: listed again, not stepped again. An event on an item the model does not know (a new item, or
any item when there is no model yet) is applied without a step: the hidden state stays as it is, the
item joins the recent items, so the next model re-encodes the state with it.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from models.artifact import ModelArtifact
from streamer.common.sessions import starts_new_session
from streamer.worker.live_quality import ListOutcomes
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import ParsedEvent
from streamer.worker.rules import remember_purchase
from streamer.worker.state import UserState

NO_MODEL_VERSION = "none"  # the version of states and lists while a worker has no model yet


@dataclass(frozen=True, slots=True)
class PendingEvent:
    parsed: ParsedEvent
    repeat: bool  # the user sent this event id before: list it again, do not apply it again
    known: bool  # the model knows the item: the event steps the hidden state


Wave = list[tuple[str, PendingEvent]]  # (user id, event), at most one event per user


@dataclass
class Plan:
    """A batch sorted out: the waves to step, and the users' working states they start from."""

    waves: list[Wave] = field(default_factory=list)
    working: dict[str, UserState] = field(default_factory=dict)  # users with events to list
    duplicates: int = 0  # redelivered events that were applied before and were skipped
    repeats: int = 0
    reencoded: int = 0  # states carried over from another model version
    unknown_items: int = 0  # events on items the model does not know


class StateAdvancer:
    def __init__(self, artifact: ModelArtifact | None, policy: ServingPolicy) -> None:
        """``artifact`` None: no model yet; every event is applied without a step."""
        self.artifact = artifact
        self.policy = policy
        self.version = artifact.version if artifact else NO_MODEL_VERSION
        self.item_index: dict[str, int] = artifact.item_index if artifact else {}
        self._model = artifact.model if artifact else None
        self._state_shape = self._model.state_shape if self._model else (0,)

    def plan(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> Plan:
        """Sort ``events`` (in consumption order) into waves on working copies of ``states``."""
        plan = Plan()
        pending: dict[str, list[PendingEvent]] = {}
        stale: list[str] = []
        for parsed in events:
            user, record = parsed.event.user_id, parsed.record
            state = plan.working.get(user) or states.get(user)
            if state is not None and state.already_applied(record.topic, record.partition, record.offset):
                plan.duplicates += 1  # its list went out when it was applied
                continue
            known = parsed.event.item_id in self.item_index
            if user not in plan.working:
                plan.working[user], is_stale = self.working_copy(state)
                if is_stale:
                    stale.append(user)
            current = plan.working[user]
            repeat = current.seen_event(parsed.event.event_id)
            if repeat:
                plan.repeats += 1
            else:
                current.remember_event(parsed.event.event_id, self.policy.recent_event_ids)
                plan.unknown_items += not known
            pending.setdefault(user, []).append(PendingEvent(parsed, repeat, known))
            # Mark as applied now so a duplicate later in the same batch is skipped too.
            current.mark_applied(record.topic, record.partition, record.offset)

        self.reencode(stale, plan.working)
        plan.reencoded = len(stale)
        longest = max((len(evs) for evs in pending.values()), default=0)
        plan.waves = [[(u, evs[j]) for u, evs in pending.items() if len(evs) > j] for j in range(longest)]
        return plan

    def working_copy(self, stored: UserState | None) -> tuple[UserState, bool]:
        """A copy of ``stored`` for this model, and whether another model wrote it (then its hidden
        state still has to be re-encoded from its recent items)."""
        if stored is None:
            return UserState(hidden=self.zero_hidden(), model_version=self.version), False
        state = UserState(**{**stored.__dict__, "applied": dict(stored.applied)})
        if stored.model_version == self.version:
            return state, False
        state.model_version = self.version
        return state, True

    def reencode(self, users: list[str], working: dict[str, UserState]) -> None:
        """Give each of ``users`` the hidden state this model reaches over its recent items."""
        if users:  # re-encoded together, one batched step per position
            histories = [(working[user].recent_items, working[user].recent_types) for user in users]
            for user, hidden in zip(users, self.reencode_many(histories), strict=True):
                working[user].hidden = hidden

    def reencode_many(self, histories: list[tuple[list[str], list[int]]]) -> list[np.ndarray]:
        """The hidden states this model reaches from zero over the known items of each (item ids,
        event types) history; position j of every history long enough is one batched step."""
        index = self.item_index
        known = [
            [(index[i], t) for i, t in zip(items, types, strict=True) if i in index]
            for items, types in histories
        ]
        longest_first = sorted((n for n in range(len(known)) if known[n]), key=lambda n: -len(known[n]))
        hiddens = [self.zero_hidden() for _ in known]
        if not longest_first or self._model is None:
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

    def zero_hidden(self) -> np.ndarray:
        return np.zeros(self._state_shape, dtype=np.float32)

    def step(
        self, wave: Wave, working: dict[str, UserState], outcomes: ListOutcomes
    ) -> tuple[torch.Tensor, int]:
        """Apply each user's event of ``wave`` (a repeated event leaves its state as it is, an unknown
        item leaves its hidden state as it is); the wave's states after it, one row per user, and how
        many new sessions started. A continued session's last list is scored into ``outcomes``."""
        applying = [(n, user, p) for n, (user, p) in enumerate(wave) if not p.repeat]
        new_sessions = 0
        for _, user, pending in applying:
            if self._starts_new_session(working[user], pending.parsed):
                _reset_session(working[user], self.zero_hidden())
                new_sessions += 1
            else:
                outcomes.observe(working[user], pending.parsed.event.item_id)
        hidden = torch.from_numpy(np.stack([working[user].hidden for user, _ in wave]))
        stepping = [(n, pending.parsed) for n, _, pending in applying if pending.known]
        if stepping:
            assert self._model is not None  # no item is known without a model
            index = self.item_index
            at = torch.tensor([n for n, _ in stepping])
            items = torch.tensor([index[parsed.event.item_id] for _, parsed in stepping])
            types = torch.tensor([int(parsed.event.event_type) for _, parsed in stepping])
            hidden[at] = self._model.step(hidden[at], items, types)
        hidden_np = hidden.numpy()
        for n, user, pending in applying:
            self._record(working[user], pending.parsed, hidden_np[n])
        return hidden, new_sessions

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
        remember_purchase(
            state, event.item_id, int(event.event_type), event.event_time, self.policy.bought_items
        )


def _reset_session(state: UserState, zero: np.ndarray) -> None:
    state.hidden = zero
    state.recent_items = []
    state.recent_types = []
    state.last_list = []
