"""Serving one model artifact: a micro-batch of events applied to user states, and lists from states.

Pure computation: no Kafka, no Faust. :meth:`Recommender.apply` advances the states by the batch's
events (:mod:`streamer.worker.advancing`) wave by wave and lists each wave's states after its step;
:meth:`Recommender.recommend` lists stored states without changing them. Both rank through the
same :meth:`Recommender.top_k`, on the artifact's scorer (:mod:`models.scoring`).
"""

import time
from dataclasses import dataclass, field

import faiss
import numpy as np
import torch

from models.artifact import ModelArtifact
from models.scorer_choice import build_scorer
from schemas.dead_letters import DeadLetter
from schemas.recommendations import Recommendation
from streamer.worker.advancing import StateAdvancer
from streamer.worker.list_encoding import ListEncoder
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import ParsedEvent
from streamer.worker.state import UserState


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

    def __init__(
        self, artifact: ModelArtifact, policy: ServingPolicy, index: faiss.Index | None = None
    ) -> None:
        self.artifact = artifact
        self.policy = policy
        self.version = artifact.version
        self.advancer = StateAdvancer(artifact, policy)
        self._model = artifact.model
        # May build an index (``index``: one shipped with the artifact).
        self.scorer = build_scorer(artifact.model.item_table(), policy.scorer, index)
        # An excluded item must not come back with a -inf score when k covers the whole catalog.
        self._k = min(policy.top_k, artifact.model.n_items - int(policy.exclude_current_item))
        self._encoder = ListEncoder(artifact.item_ids, artifact.version)

    def apply(self, events: list[ParsedEvent], states: dict[str, UserState | None]) -> BatchResult:
        """Apply ``events`` (in consumption order) on top of ``states`` (user id -> stored state):
        the new states, and one list per event that was not applied before."""
        plan = self.advancer.plan(events, states)
        result = BatchResult(
            states=plan.working,
            dead_letters=plan.dead_letters,
            duplicates=plan.duplicates,
            repeats=plan.repeats,
            reencoded=plan.reencoded,
        )
        index = self.artifact.item_index
        for wave in plan.waves:
            hidden, new_sessions = self.advancer.step(wave, plan.working)
            result.new_sessions += new_sessions
            events_of_wave = [pending.parsed for _, pending in wave]
            exclude = None
            if self.policy.exclude_current_item:
                exclude = torch.tensor([index[parsed.event.item_id] for parsed in events_of_wave])
            scores, top = self.top_k(hidden, self._k, exclude)
            lists = self._encoder.encode_wave(events_of_wave, top, scores, time.time())
            result.lists.extend(zip([user for user, _ in wave], lists, strict=True))
        return result

    def recommend(
        self, states: list[UserState | None], k: int, exclude: list[list[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` best (item id, score) for each stored state, leaving out each row's ``exclude``
        items; a state another model wrote is re-encoded first, none is changed, None is a new user."""
        working = {str(n): self.advancer.working_copy(state) for n, state in enumerate(states)}
        self.advancer.reencode(
            [n for n, (_, stale) in working.items() if stale], {n: s for n, (s, _) in working.items()}
        )
        hidden = torch.from_numpy(np.stack([state.hidden for state, _ in working.values()]))
        index = self.artifact.item_index
        excluded = None
        if exclude:
            width = max(1, *(len(row) for row in exclude))
            excluded = torch.tensor(
                [[index.get(item, -1) for item in row] + [-1] * (width - len(row)) for row in exclude]
            )
        k = min(k, self._model.n_items - (0 if excluded is None else int((excluded >= 0).sum(1).max())))
        scores, top = self.top_k(hidden, k, excluded)
        ids = self.artifact.item_ids
        return [
            [(ids[i], s) for i, s in zip(row_top, row_scores, strict=True)]
            for row_top, row_scores in zip(top.tolist(), scores.tolist(), strict=True)
        ]

    def top_k(
        self, hidden: torch.Tensor, k: int, exclude: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Read-only ranking of ``[B, *state_shape]`` states: ``(scores [B, k], item indices [B, k])``."""
        return self.scorer.top_k(self._model.query(hidden), k, exclude)

    def reencode_many(self, histories: list[tuple[list[str], list[int]]]) -> list[np.ndarray]:
        return self.advancer.reencode_many(histories)
