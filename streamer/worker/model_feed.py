"""Which model a worker serves. The :class:`ModelHolder` swaps recommenders only between
micro-batches: a new model is loaded and validated elsewhere, staged, and picked up by the next batch
as a whole. The :class:`ModelFeed` stages the first model at start, then every sound model announced
on the model-updates topic (:mod:`streamer.registry`): every worker reads every announcement (no
consumer group) and loads the artifact in a thread. A bad artifact is refused, counted, and the
current model keeps serving.

At start, a worker serves the newest announced model whose artifact verifies. That is what a running
worker serves too: it switches to every sound announcement and keeps its model when one is refused,
so a restarted worker lands on the same version as its peers. ``STREAMREC_MODEL_PATH`` is the
fallback only when no announced model verifies; when there is nothing there either, the worker serves
popularity counted from the stream until the retrainer announces a first model.
"""

import asyncio
import logging
from pathlib import Path

import faiss
from aiokafka import TopicPartition

from models.artifact import ModelArtifact, load_artifact
from schemas.model_updates import ModelAnnouncement, is_history_key
from streamer.common.admin import ensure_model_updates_topic
from streamer.common.settings import Settings
from streamer.registry import (
    AnnouncementRefused,
    artifact_path,
    load_announced,
    load_announced_index,
    newest_sound_announcement,
    parse_announcement,
)
from streamer.worker.engine import Recommender, ServingContext
from streamer.worker.following import started_consumer
from streamer.worker.metrics import MODEL_INFO, MODEL_SWAP_REFUSED
from streamer.worker.policy import ServingPolicy, serving_policy

log = logging.getLogger(__name__)


def count_refusal(refusal: AnnouncementRefused) -> None:
    MODEL_SWAP_REFUSED.labels(refusal.reason).inc()


class ModelHolder:
    def __init__(self, policy: ServingPolicy, context: ServingContext | None = None) -> None:
        self.policy = policy
        self.context = context or ServingContext.standalone(policy)
        self.recommender: Recommender | None = None
        self._staged: Recommender | None = None

    @property
    def version(self) -> str | None:
        """The newest version this worker has accepted: the next micro-batch runs it."""
        newest = self._staged or self.recommender
        return newest.version if newest else None

    def stage(self, recommender: Recommender, source: Path) -> None:
        """Make ``recommender`` serve from the next micro-batch on."""
        self._staged = recommender
        log.info("model %s from %s staged; the next micro-batch uses it", recommender.version, source)

    def serving(self) -> Recommender | None:
        """The newest accepted recommender, for queries: the one the next micro-batch runs."""
        return self._staged or self.recommender

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


class ModelFeed:
    """The model side of a worker: the first model at start, then every announced one."""

    def __init__(self, settings: Settings, context: ServingContext | None = None) -> None:
        self.settings = settings
        self.holder = ModelHolder(serving_policy(settings), context)
        self._follow_from = 0

    def load_initial(self) -> None:
        """Stage the newest announced model that verifies, else ``STREAMREC_MODEL_PATH``, else no
        model (popularity) if nothing is there; raise if that path holds something that does not load."""
        ensure_model_updates_topic(self.settings)
        sound, self._follow_from = newest_sound_announcement(self.settings, count_refusal)
        if sound is not None:
            announcement, artifact = sound
            try:
                index = load_announced_index(self.settings, announcement, artifact)
            except AnnouncementRefused as exc:  # the weights verify: serve them, with an index of ours
                count_refusal(exc)
                log.error("building an index for model %s: %s", announcement.version, exc)
                index = None
            path = artifact_path(self.settings, announcement)
            self.holder.stage(self.recommender(artifact, index), path)
            return
        fallback = self.settings.models.fallback
        if not fallback.exists():
            log.warning(
                "no announced model verifies and STREAMREC_MODEL_PATH (%s) does not exist: serving "
                "popularity counted from the stream until a model is announced",
                fallback,
            )
            self.holder.stage(self.recommender(None), fallback)
            return
        log.info("no announced model verifies; serving %s", fallback)
        self.holder.stage(self.recommender(load_artifact(fallback)), fallback)

    async def follow(self) -> None:
        """Stage every sound model announced after start, for as long as the worker runs."""
        tp = TopicPartition(self.settings.topics.model_updates, 0)
        consumer = await started_consumer(self.settings, "model updates")
        try:
            consumer.assign([tp])
            consumer.seek(tp, self._follow_from)
            async for record in consumer:
                if is_history_key(record.key):
                    continue  # the same announcement as the one under its own key, kept for starts
                try:
                    announcement = parse_announcement(record.value)
                except AnnouncementRefused as exc:
                    count_refusal(exc)
                    log.error("ignoring a model announcement: %s", exc)
                    continue
                if announcement.version != self.holder.version:
                    await self._consider(announcement)
        finally:
            await consumer.stop()

    def recommender(self, artifact: ModelArtifact | None, index: faiss.Index | None = None) -> Recommender:
        """A recommender serving ``artifact`` (None: popularity only) under this worker's policy and
        context, with the approximate index shipped with it (None: its scorer builds one if it needs
        one)."""
        return Recommender(artifact, self.holder.policy, self.holder.context, index)

    def _prepare(self, announcement: ModelAnnouncement) -> Recommender:
        artifact = load_announced(self.settings, announcement)
        return self.recommender(artifact, load_announced_index(self.settings, announcement, artifact))

    async def _consider(self, announcement: ModelAnnouncement) -> None:
        # Loading, verifying and building the scorer (an index, for a large catalog) run in a thread:
        # the stream keeps serving the current model until the new one is ready.
        try:
            recommender = await asyncio.to_thread(self._prepare, announcement)
        except AnnouncementRefused as exc:
            count_refusal(exc)
            log.error(
                "announced model %s refused, still serving %s: %s",
                announcement.version,
                self.holder.version,
                exc,
            )
            return
        self.holder.stage(recommender, artifact_path(self.settings, announcement))
