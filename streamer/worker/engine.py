"""Serving one model artifact: a micro-batch of events applied to user states, and lists from states.

Pure computation: no Kafka, no Faust. :meth:`Recommender.apply` advances the states by the batch's
events (:mod:`streamer.worker.advancing`) wave by wave and lists each wave's states after its step;
:meth:`Recommender.recommend` lists stored states without changing them. Both rank through
:meth:`Recommender.rank`: the model's scorer (:mod:`models.scoring`) for states with an item the
model knows, popularity (:mod:`streamer.worker.popularity`) for the others, the business rules
(:mod:`streamer.worker.rules`) and the catalog's unavailable items left out before the top-K cut.
"""

import time
from dataclasses import dataclass, field

import faiss
import numpy as np
import torch

from models.artifact import ModelArtifact
from models.scorer_choice import build_scorer
from schemas.dead_letters import DeadLetter
from schemas.recommendations import SCORE_DECIMALS, Recommendation
from streamer.worker.advancing import StateAdvancer
from streamer.worker.catalog import Catalog
from streamer.worker.list_encoding import ListEncoder, Ranked, ranked_rows
from streamer.worker.live_quality import ListOutcomes
from streamer.worker.policy import ServingPolicy
from streamer.worker.popularity import StreamPopularity, popular_list
from streamer.worker.records import ParsedEvent
from streamer.worker.rules import excluded_items
from streamer.worker.state import UserState

MODEL, POPULARITY = "model", "popularity"  # what ranked a list (its ``basis``)


@dataclass
class ServingContext:
    """What a worker serves with whatever the model: the item catalog and the stream's popularity."""

    catalog: Catalog
    popularity: StreamPopularity

    @classmethod
    def standalone(cls, policy: ServingPolicy) -> "ServingContext":
        """An empty catalog and a fresh popularity count: for tools and tests without a worker."""
        return cls(Catalog(), StreamPopularity(policy.popularity_half_life_s))


@dataclass
class BatchResult:
    lists: list[tuple[str, bytes]] = field(default_factory=list)  # (user id, Recommendation bytes)
    states: dict[str, UserState] = field(default_factory=dict)  # users whose state changed
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0  # redelivered events that were applied before and were skipped
    repeats: int = 0  # events whose event id the user sent before: listed again, not applied again
    reencoded: int = 0  # states carried over from another model version
    new_sessions: int = 0
    unknown_items: int = 0  # events on items the model does not know: listed, not stepped
    popularity_lists: int = 0  # lists ranked by popularity (the others by the model)
    outcomes: ListOutcomes = field(default_factory=ListOutcomes)  # how the previous lists fared

    def recommendations(self) -> list[Recommendation]:
        """The lists, decoded (the hot path only ever needs their bytes)."""
        return [Recommendation.from_bytes(value) for _, value in self.lists]


@dataclass(frozen=True)
class Answer:
    """One list, for the query API."""

    items: list[tuple[str, float]]
    model_version: str
    basis: str  # MODEL or POPULARITY


class Recommender:
    """Serves one model artifact (None: no model yet, popularity only) under one policy."""

    def __init__(
        self,
        artifact: ModelArtifact | None,
        policy: ServingPolicy,
        context: ServingContext | None = None,
        index: faiss.Index | None = None,
    ) -> None:
        self.artifact = artifact
        self.policy = policy
        self.context = context or ServingContext.standalone(policy)
        self.advancer = StateAdvancer(artifact, policy)
        self.version = self.advancer.version
        self._index = self.advancer.item_index
        self._model = artifact.model if artifact else None
        self._seen_bonus = self._model.item_table().seen_bonus if self._model else 0.0
        # May build an index (``index``: one shipped with the artifact); seconds for a large catalog,
        # so ModelFeed builds recommenders in a thread.
        self.scorer = build_scorer(self._model.item_table(), policy.scorer, index) if self._model else None
        self._item_ids = np.array(artifact.item_ids if artifact else [], dtype=object)
        self._popular_items = artifact.popular_items if artifact else []
        self._encoder = ListEncoder(self.version)

    def apply(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> BatchResult:
        """Apply ``events`` (in consumption order) on top of ``states`` (user id -> stored state):
        the new states, and one list per event that was not applied before."""
        plan = self.advancer.plan(events, states)
        result = BatchResult(
            states=plan.working,
            duplicates=plan.duplicates,
            repeats=plan.repeats,
            reencoded=plan.reencoded,
            unknown_items=plan.unknown_items,
        )
        popularity = self.context.popularity
        for wave in plan.waves:
            hidden, new_sessions = self.advancer.step(wave, plan.working, result.outcomes)
            result.new_sessions += new_sessions
            states_of_wave = [plan.working[user] for user, _ in wave]
            events_of_wave = [pending.parsed for _, pending in wave]
            for _, pending in wave:
                if not pending.repeat:
                    popularity.add(pending.parsed.event.item_id, pending.parsed.event.event_time)
            # A state stepped by a known item has something to say; any other is checked.
            usable = [
                (pending.known and not pending.repeat) or self._has_known_items(state)
                for (_, pending), state in zip(wave, states_of_wave, strict=True)
            ]
            current = [parsed.event.item_id for parsed in events_of_wave]
            rows, bases = self.rank(hidden, states_of_wave, usable, self.policy.top_k, current)
            for state, (names, _), basis in zip(states_of_wave, rows, bases, strict=True):
                state.last_list = names
                state.last_list_version = self.version if basis == MODEL else POPULARITY
            result.popularity_lists += bases.count(POPULARITY)
            lists = self._encoder.encode(events_of_wave, rows, bases, time.time())
            result.lists.extend(zip([user for user, _ in wave], lists, strict=True))
        return result

    def recommend(
        self, states: list[UserState | None], k: int, exclude: list[list[str]] | None = None
    ) -> list[Answer]:
        """The ``k`` best items for each stored state under the business rules, also leaving out each
        row's ``exclude`` items; a state another model wrote is re-encoded first, none is changed,
        None is a new user (popularity)."""
        working = [self.advancer.working_copy(state) for state in states]
        stale = {str(n): state for n, (state, is_stale) in enumerate(working) if is_stale}
        self.advancer.reencode(list(stale), stale)
        copies = [state for state, _ in working]
        usable = [
            stored is not None and self._has_known_items(copy)
            for stored, copy in zip(states, copies, strict=True)
        ]
        current = [state.recent_items[-1] if state.recent_items else None for state in copies]
        hidden = torch.from_numpy(np.stack([state.hidden for state in copies]))
        rows, bases = self.rank(hidden, copies, usable, k, current, exclude)
        return [
            Answer(list(zip(names, scores, strict=True)), self.version, basis)
            for (names, scores), basis in zip(rows, bases, strict=True)
        ]

    def session_state(self, items: list[str], types: list[int]) -> UserState:
        """The state an anonymous session of ``items`` (with event ``types``) reaches, kept nowhere."""
        [hidden] = self.advancer.reencode_many([(items, types)])
        return UserState(hidden, self.version, recent_items=list(items), recent_types=list(types))

    def rank(
        self,
        hidden: torch.Tensor,
        states: list[UserState],
        usable: list[bool],
        k: int,
        current: list[str | None],
        extra: list[list[str]] | None = None,
    ) -> tuple[list[Ranked], list[str]]:
        """One list per row of ``hidden`` (the rows of ``states``): the model's for ``usable`` rows,
        popularity's for the others; the rules' items for each row (the event's item being
        ``current``), its ``extra`` items and unavailable items left out before the cut."""
        excluded = [
            excluded_items(state, self.policy, item) + (extra[n] if extra else [])
            for n, (state, item) in enumerate(zip(states, current, strict=True))
        ]
        rows: list[Ranked] = [([], [])] * len(states)
        bases = [MODEL if use else POPULARITY for use in usable]
        model_rows = [n for n, use in enumerate(usable) if use]
        if model_rows:
            ranked_rows_of_model = self._model_rows(hidden, model_rows, states, excluded, k)
            for n, ranked in zip(model_rows, ranked_rows_of_model, strict=True):
                rows[n] = ranked
        if len(model_rows) < len(states):
            ranking, unavailable = self._popularity(), self.context.catalog.unavailable
            for n, use in enumerate(usable):
                if not use:
                    chosen = popular_list(ranking, k, set(excluded[n]), unavailable)
                    rows[n] = ([item for item, _ in chosen], [round(w, SCORE_DECIMALS) for _, w in chosen])
        return rows, bases

    def _model_rows(
        self,
        hidden: torch.Tensor,
        rows: list[int],
        states: list[UserState],
        excluded: list[list[str]],
        k: int,
    ) -> list[Ranked]:
        assert self._model is not None and self.scorer is not None  # no row is usable without a model
        if len(rows) < len(hidden):
            hidden = hidden[rows]
        unavailable = self.context.catalog.unavailable_indices(self._index)
        seen = self._indices([states[n].recent_items for n in rows]) if self._seen_bonus else None
        scores, top = self.scorer.top_k(
            self._model.query(hidden),
            min(k, self._model.n_items),
            self._indices([excluded[n] for n in rows]),
            unavailable if len(unavailable) else None,
            seen,
        )
        return ranked_rows(self._item_ids, top, scores)

    def _indices(self, item_lists: list[list[str]]) -> torch.Tensor | None:
        """The item lists as model indices, ``[rows, width]`` padded with -1 at the start (unknown items
        are -1 too), so that each list's last item is in the last column (what a seen bonus's decay
        counts from; exclusions ignore the order), or None if all are empty."""
        width = max(map(len, item_lists))
        if not width:
            return None
        index = self._index
        return torch.tensor(
            [[-1] * (width - len(items)) + [index.get(item, -1) for item in items] for items in item_lists]
        )

    def _popularity(self) -> list[tuple[str, float]]:
        """The model's own popularity list if it carries one, else the stream's."""
        return self._popular_items or self.context.popularity.ranked()

    def _has_known_items(self, state: UserState) -> bool:
        index = self._index
        return any(item in index for item in state.recent_items)

    def reencode_many(self, histories: list[tuple[list[str], list[int]]]) -> list[np.ndarray]:
        return self.advancer.reencode_many(histories)
