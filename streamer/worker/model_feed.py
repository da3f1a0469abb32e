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
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import faiss
from aiokafka import TopicPartition

from models.artifact import ModelArtifact, load_artifact
from models.stepwise import Steps
from schemas.model_updates import ModelAnnouncement, is_history_key
from streamer.common.admin import ensure_model_updates_topic
from streamer.common.settings import Settings
from streamer.registry import (
    AnnouncementRefused,
    artifact_path,
    finish_announced,
    load_announced_index,
    newest_sound_announcement,
    parse_announcement,
    read_announced,
)
from streamer.worker.engine import Recommender, ServingContext
from streamer.worker.following import started_consumer
from streamer.worker.metrics import MODEL_INFO, MODEL_SWAP_REFUSED
from streamer.worker.policy import ServingPolicy, serving_policy

log = logging.getLogger(__name__)
T = TypeVar("T")


# Loading a model is seconds of CPU (1M items: two 400 MB checksums, the weights, the index), and on
# a busy 2-core machine the loader took a core from the event loop: serving fell 2 s behind during a
# swap. At the lowest priority it runs on what the loop, the broker and the producers leave, and only
# the swap waits. It must then never hold the GIL for long (preempted, it would stall the loop on the
# GIL): what makes Python objects, the vocabulary, runs on the loop in steps instead. Linux sets a
# thread's priority by its id; elsewhere this would lower the whole process.
LOADER_NICENESS = 19
# The vocabulary's steps (models.vocabulary_file, 2-3 ms each) take at most this share of the loop,
# a pause after each step in proportion to its length: a million ids are 0.4 s of work idle and
# ~1 s beside a busy stream, and at a third of the loop (a fixed 5 ms pause) a worker near its
# capacity at 770 events/s on a 1M-item model fell 1.3 s behind.
STEPS_SHARE_OF_LOOP = 0.2


def lower_loader_priority() -> None:
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICENESS)


async def between_batches(steps: Steps[T]) -> T:
    """Run ``steps`` on the event loop, a pause after each: the stream keeps most of the loop."""
    while True:
        started = time.perf_counter()
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        took = time.perf_counter() - started
        await asyncio.sleep(took * (1 - STEPS_SHARE_OF_LOOP) / STEPS_SHARE_OF_LOOP)


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
        self._loader = ThreadPoolExecutor(1, "model-loader", initializer=lower_loader_priority)

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
            self._loader.shutdown(wait=False, cancel_futures=True)

    def recommender(self, artifact: ModelArtifact | None, index: faiss.Index | None = None) -> Recommender:
        """A recommender serving ``artifact`` (None: popularity only) under this worker's policy and
        context, with the approximate index shipped with it (None: its scorer builds one if it needs
        one)."""
        return Recommender(artifact, self.holder.policy, self.holder.context, index)

    def _indexed(self, announcement: ModelAnnouncement, artifact: ModelArtifact) -> Recommender:
        return self.recommender(artifact, load_announced_index(self.settings, announcement, artifact))

    async def _prepare(self, announcement: ModelAnnouncement) -> Recommender:
        """Reading and verifying the files and building the scorer (an index, for a large catalog) run
        in the loader thread, the vocabulary on the loop between micro-batches: the stream keeps
        serving the current model until the new one is ready."""
        loop = asyncio.get_running_loop()
        staged = await loop.run_in_executor(self._loader, read_announced, self.settings, announcement)
        serving = self.holder.serving()
        known = serving.artifact if serving else None
        artifact = await between_batches(finish_announced(staged, known))
        return await loop.run_in_executor(self._loader, self._indexed, announcement, artifact)

    async def _consider(self, announcement: ModelAnnouncement) -> None:
        try:
            recommender = await self._prepare(announcement)
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
