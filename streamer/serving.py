"""Which model serves. The holder swaps recommenders only between micro-batches: a new model is
loaded and validated elsewhere, staged here, and picked up by the next batch as a whole."""

import logging
from pathlib import Path

from models.artifact import ModelArtifact
from streamer.engine import Recommender, ServingPolicy
from streamer.metrics import MODEL_INFO
from streamer.settings import Settings

log = logging.getLogger(__name__)


def serving_policy(settings: Settings) -> ServingPolicy:
    return ServingPolicy(
        top_k=settings.top_k,
        exclude_current_item=settings.exclude_current_item,
        session_mode=settings.session_mode,
        session_gap_s=settings.session_gap_s,
        recent_items=settings.recent_items,
        recent_event_ids=settings.recent_event_ids,
    )


class ModelHolder:
    def __init__(self, policy: ServingPolicy) -> None:
        self.policy = policy
        self.recommender: Recommender | None = None
        self._staged: Recommender | None = None

    @property
    def version(self) -> str | None:
        """The newest version this worker has accepted: the next micro-batch runs it."""
        newest = self._staged or self.recommender
        return newest.version if newest else None

    def stage(self, artifact: ModelArtifact, source: Path) -> None:
        """Make ``artifact`` the model of the next micro-batch."""
        self._staged = Recommender(artifact, self.policy)
        log.info("model %s from %s staged; the next micro-batch uses it", artifact.version, source)

    def for_next_batch(self) -> Recommender:
        """The recommender for the batch about to run, switching to a staged one first."""
        if self._staged is not None:
            previous = self.recommender
            self.recommender, self._staged = self._staged, None
            if previous is not None:
                MODEL_INFO.labels(previous.version).set(0)
                log.info("switched from model %s to %s", previous.version, self.recommender.version)
            MODEL_INFO.labels(self.recommender.version).set(1)
        if self.recommender is None:
            raise RuntimeError("no model loaded")
        return self.recommender
