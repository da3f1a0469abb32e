"""Following the model-updates topic: every streamer reads every announcement (no consumer group),
loads and validates the announced artifact in a thread, and stages it in the
:class:`~streamer.serving.ModelHolder` only if it is sound. A bad artifact is refused, counted, and
the current model keeps serving.

At start, the latest announcement (if any) decides the first model, so a new worker serves what
its peers serve; ``STREAMREC_MODEL_PATH`` is the fallback when nothing has been announced.
"""

import asyncio
import logging
from pathlib import Path

from models.artifact import ArtifactError, ModelArtifact, load_artifact
from schemas.errors import InvalidMessage
from schemas.model_updates import ModelAnnouncement
from streamer.admin import ensure_model_updates_topic
from streamer.kafka_config import aiokafka_config, kafka_python_config
from streamer.metrics import MODEL_SWAP_REFUSED
from streamer.serving import ModelHolder, serving_policy
from streamer.settings import Settings

log = logging.getLogger(__name__)


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


def read_latest_announcement(settings: Settings) -> tuple[ModelAnnouncement | None, int]:
    """The last valid announcement on the (single-partition) topic, and the offset after it."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(settings.model_updates_topic, 0)
    consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        latest = None
        while consumer.position(tp) < end:
            for record in consumer.poll(timeout_ms=1000).get(tp, []):
                latest = _parse(record.value) or latest
        return latest, end
    finally:
        consumer.close()


class ModelFeed:
    """The model side of a worker: the first model at start, then every announced one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.holder = ModelHolder(serving_policy(settings))
        self._follow_from = 0

    def load_initial(self) -> None:
        """Stage the latest announced model, else ``STREAMREC_MODEL_PATH``; raise if neither loads."""
        ensure_model_updates_topic(self.settings)
        announcement, self._follow_from = read_latest_announcement(self.settings)
        if announcement is not None:
            try:
                self._stage(announcement, load_announced(self.settings, announcement))
                return
            except AnnouncementRefused as exc:
                MODEL_SWAP_REFUSED.labels(exc.reason).inc()
                log.error("latest announced model refused (%s); serving %s", exc, self.settings.model_path)
        self.holder.stage(load_artifact(self.settings.model_path), self.settings.model_path)

    async def follow(self) -> None:
        """Stage every sound model announced after start, for as long as the worker runs."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self.settings.model_updates_topic, 0)
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **aiokafka_config(self.settings))
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, self._follow_from)
            async for record in consumer:
                announcement = _parse(record.value)
                if announcement is not None and announcement.version != self.holder.version:
                    await self._consider(announcement)
        finally:
            await consumer.stop()

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
