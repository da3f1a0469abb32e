"""Following the model-updates topic: every streamer reads every announcement (no consumer group),
loads and validates the announced artifact in a thread, and stages it in the
:class:`~streamer.serving.ModelHolder` only if it is sound. A bad artifact is refused, counted, and
the current model keeps serving.

At start, a worker serves the newest announced model whose artifact verifies: it reads the whole
topic and walks back from the newest announcement. That is what a running worker serves too: it
switches to every sound announcement and keeps its model when one is refused, so a restarted worker
lands on the same version as its peers. ``STREAMREC_MODEL_PATH`` is the fallback only when no
announced model verifies.

Walking back needs the older announcements, and the ``current`` key alone keeps only the newest once
compaction runs: so the retrainer also keeps each announcement under a per-version key
(:func:`schemas.model_updates.history_key`). Listing the model store instead would find artifacts
that were never announced (the retrainer writes the artifact, then announces; a crash in between
leaves one), which a restarted worker would serve and its peers never would.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from models.artifact import ArtifactError, ModelArtifact, load_artifact
from schemas.errors import InvalidMessage
from schemas.model_updates import ModelAnnouncement, is_history_key
from streamer.admin import ensure_model_updates_topic
from streamer.kafka_config import aiokafka_config, kafka_python_config
from streamer.metrics import MODEL_SWAP_REFUSED
from streamer.serving import ModelHolder, serving_policy
from streamer.settings import Settings

log = logging.getLogger(__name__)

FOLLOW_RETRY_S = 2.0


class AnnouncementRefused(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def artifact_path(settings: Settings, announcement: ModelAnnouncement) -> Path:
    return settings.model_store / announcement.path


def load_announced(settings: Settings, announcement: ModelAnnouncement) -> ModelArtifact:
    """Load and check the announced artifact; raise :class:`AnnouncementRefused` if it is not sound."""
    path = artifact_path(settings, announcement)
    try:
        artifact = load_artifact(path)
    except (ArtifactError, OSError) as exc:
        raise AnnouncementRefused("unloadable", f"{path}: {exc}") from exc
    if artifact.checksum != announcement.checksum:
        raise AnnouncementRefused(
            "checksum_mismatch", f"{path} has checksum {artifact.checksum}, announced {announcement.checksum}"
        )
    if artifact.version != announcement.version:
        raise AnnouncementRefused(
            "version_mismatch", f"{path} holds version {artifact.version}, announced {announcement.version}"
        )
    return artifact


def read_announcements(settings: Settings) -> tuple[list[ModelAnnouncement], int]:
    """Every valid announcement on the (single-partition) topic in offset order, whatever its key,
    and the offset after the last record."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(settings.model_updates_topic, 0)
    consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        announcements = []
        while consumer.position(tp) < end:
            for record in consumer.poll(timeout_ms=1000).get(tp, []):
                if (announcement := _parse(record.value)) is not None:
                    announcements.append(announcement)
        return announcements, end
    finally:
        consumer.close()


def newest_first(announcements: Iterable[ModelAnnouncement]) -> list[ModelAnnouncement]:
    """Distinct announcements (by version, path and checksum), the most recently announced first:
    an announcement published again (under another key, or as a rollback) counts where it was last."""
    seen: set[tuple[str, str, str]] = set()
    ordered = []
    for announcement in reversed(list(announcements)):
        identity = (announcement.version, announcement.path, announcement.checksum)
        if identity not in seen:
            seen.add(identity)
            ordered.append(announcement)
    return ordered


def first_sound(
    candidates: Iterable[ModelAnnouncement], load: Callable[[ModelAnnouncement], ModelArtifact]
) -> tuple[ModelAnnouncement, ModelArtifact] | None:
    """The first candidate whose artifact ``load`` accepts, with the artifact; each refusal is
    counted and logged."""
    for announcement in candidates:
        try:
            return announcement, load(announcement)
        except AnnouncementRefused as exc:
            MODEL_SWAP_REFUSED.labels(exc.reason).inc()
            log.error(
                "announced model %s refused, trying the one announced before it: %s",
                announcement.version,
                exc,
            )
    return None


def newest_sound_announcement(
    settings: Settings,
) -> tuple[tuple[ModelAnnouncement, ModelArtifact] | None, int]:
    """The newest announced model that verifies (None if none does), and the offset after the topic's
    last record."""
    announcements, end = read_announcements(settings)
    return first_sound(newest_first(announcements), lambda a: load_announced(settings, a)), end


class ModelFeed:
    """The model side of a worker: the first model at start, then every announced one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.holder = ModelHolder(serving_policy(settings))
        self._follow_from = 0

    def load_initial(self) -> None:
        """Stage the newest announced model that verifies, else ``STREAMREC_MODEL_PATH``; raise if
        neither loads."""
        ensure_model_updates_topic(self.settings)
        sound, self._follow_from = newest_sound_announcement(self.settings)
        if sound is not None:
            self._stage(*sound)
            return
        log.info("no announced model verifies; serving %s", self.settings.model_path)
        self.holder.stage(load_artifact(self.settings.model_path), self.settings.model_path)

    async def follow(self) -> None:
        """Stage every sound model announced after start, for as long as the worker runs."""
        tp = TopicPartition(self.settings.model_updates_topic, 0)
        consumer = await self._started_consumer()
        try:
            consumer.assign([tp])
            consumer.seek(tp, self._follow_from)
            async for record in consumer:
                if is_history_key(record.key):
                    continue  # the same announcement as the one under its own key, kept for starts
                announcement = _parse(record.value)
                if announcement is not None and announcement.version != self.holder.version:
                    await self._consider(announcement)
        finally:
            await consumer.stop()

    async def _started_consumer(self) -> AIOKafkaConsumer:
        """A started consumer, retried while Kafka cannot be reached: this runs as a Faust task once
        the worker is ready, and a task that raises stops the whole worker."""
        while True:
            consumer = AIOKafkaConsumer(
                group_id=None, enable_auto_commit=False, **aiokafka_config(self.settings)
            )
            try:
                await consumer.start()
                return consumer
            except KafkaConnectionError as exc:
                await consumer.stop()
                log.warning("cannot follow model updates yet, retrying in %s s: %s", FOLLOW_RETRY_S, exc)
                await asyncio.sleep(FOLLOW_RETRY_S)

    async def _consider(self, announcement: ModelAnnouncement) -> None:
        try:
            artifact = await asyncio.to_thread(load_announced, self.settings, announcement)
        except AnnouncementRefused as exc:
            MODEL_SWAP_REFUSED.labels(exc.reason).inc()
            log.error(
                "announced model %s refused, still serving %s: %s",
                announcement.version,
                self.holder.version,
                exc,
            )
            return
        self._stage(announcement, artifact)

    def _stage(self, announcement: ModelAnnouncement, artifact: ModelArtifact) -> None:
        self.holder.stage(artifact, artifact_path(self.settings, announcement))


def _parse(value: bytes | None) -> ModelAnnouncement | None:
    try:
        return ModelAnnouncement.from_bytes(value or b"")
    except InvalidMessage as exc:
        MODEL_SWAP_REFUSED.labels("malformed_announcement").inc()
        log.error("ignoring a malformed model announcement: %s", exc)
        return None
