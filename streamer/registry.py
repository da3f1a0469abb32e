"""The model registry: the model store (a directory shared by the retrainer and the workers) and the
``model-updates`` protocol that points into it. The retrainer writes an artifact and announces it;
workers read the newest announcement whose artifact verifies, and follow the later ones.

An announcement is published under the ``current`` key (what running workers follow) and under a
per-version key (:func:`schemas.model_updates.history_key`), so compaction keeps every announced
version and a restarted worker can walk back past a bad newest one. Listing the store instead would
find artifacts that were never announced (the retrainer writes, then announces; a crash in between
leaves one), which a restarted worker would serve and its peers never would.
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import faiss
from torch import nn

from models.ann import AnnParams
from models.artifact import (
    ArtifactError,
    ModelArtifact,
    StagedArtifact,
    load_artifact,
    read_artifact,
    save_artifact_in,
)
from models.scorer_choice import ScorerChoice
from models.shipped_index import load_shipped_index, ship_index
from models.stepwise import Steps, drain
from schemas.errors import InvalidMessage
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement, history_key
from streamer.common.kafka_config import kafka_python_config
from streamer.common.settings import Settings

log = logging.getLogger(__name__)


class AnnouncementRefused(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# --- writing: the retrainer ---------------------------------------------------------------------


def store_artifact(
    settings: Settings,
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
    popular_items: Sequence[tuple[str, float]] = (),
) -> ModelArtifact:
    """Write an artifact to ``<model store>/<version>`` (atomically) and return it as loaded back from
    the store, so what is announced is exactly what the workers will read."""
    path = save_artifact_in(
        settings.models.store, model, item_ids, config, data_fingerprint, metrics, popular_items
    )
    artifact = load_artifact(path)
    if ships_index(settings, artifact.model.n_items):  # the workers' index, built once, here
        ship_index(path, artifact, AnnParams())
    return artifact


def ships_index(settings: Settings, n_items: int) -> bool:
    """Whether workers with these settings serve a catalog of ``n_items`` through an index."""
    return ScorerChoice(settings.worker.scorer, settings.worker.ann_from_items).uses_ann(n_items)


def announce(settings: Settings, artifact: ModelArtifact, path: Path | None = None) -> ModelAnnouncement:
    """Publish ``artifact``, stored at ``path`` in the model store (default: its version's directory),
    on the compacted model-updates topic under ``current`` and under its version's history key, and
    wait until Kafka has both."""
    from kafka import KafkaProducer

    path = settings.models.store / artifact.version if path is None else path
    announcement = ModelAnnouncement(
        version=artifact.version,
        path=os.path.relpath(path, settings.models.store),
        checksum=artifact.checksum,
        created_at=time.time(),
        metrics={k: float(v) for k, v in artifact.metrics.items()},
    )
    producer = KafkaProducer(acks="all", **kafka_python_config(settings))
    try:
        # ``current`` first: running workers follow that key, so a crash before the history record
        # still reaches every worker; the history record lets a restarted one walk back past a bad
        # later announcement.
        for key in (ANNOUNCEMENT_KEY, history_key(announcement.version)):
            producer.send(settings.topics.model_updates, key=key, value=announcement.to_bytes()).get(30)
    finally:
        producer.close()
    return announcement


# --- reading: workers and the retrainer ---------------------------------------------------------


def artifact_path(settings: Settings, announcement: ModelAnnouncement) -> Path:
    return settings.models.store / announcement.path


def load_announced(settings: Settings, announcement: ModelAnnouncement) -> ModelArtifact:
    """Load and check the announced artifact; raise :class:`AnnouncementRefused` if it is not sound."""
    return drain(finish_announced(read_announced(settings, announcement)))


def read_announced(settings: Settings, announcement: ModelAnnouncement) -> StagedArtifact:
    """The announced artifact read and checked but for its vocabulary (:func:`finish_announced`);
    raise :class:`AnnouncementRefused` if it is not sound."""
    path = artifact_path(settings, announcement)
    try:
        artifact = read_artifact(path)
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


def finish_announced(staged: StagedArtifact, known: ModelArtifact | None = None) -> Steps[ModelArtifact]:
    """The artifact of :func:`read_announced`, in steps, reusing the vocabulary of ``known`` where
    it can (:meth:`StagedArtifact.finish`); raise :class:`AnnouncementRefused` if its vocabulary is
    not sound."""
    try:
        return (yield from staged.finish(known))
    except ArtifactError as exc:
        raise AnnouncementRefused("unloadable", str(exc)) from exc


def load_announced_index(
    settings: Settings, announcement: ModelAnnouncement, artifact: ModelArtifact
) -> faiss.Index | None:
    """The approximate index shipped with the announced artifact, if these settings serve its catalog
    through one and one was shipped; raise :class:`AnnouncementRefused` if it does not verify."""
    if not ships_index(settings, artifact.model.n_items):
        return None
    path = artifact_path(settings, announcement)
    try:
        return load_shipped_index(path, artifact)
    except ArtifactError as exc:
        raise AnnouncementRefused("bad_index", str(exc)) from exc


def parse_announcement(value: bytes | None) -> ModelAnnouncement:
    """An announcement record's value; raise :class:`AnnouncementRefused` if it is malformed."""
    try:
        return ModelAnnouncement.from_bytes(value or b"")
    except InvalidMessage as exc:
        raise AnnouncementRefused("malformed_announcement", str(exc)) from exc


Refusals = Callable[[AnnouncementRefused], None]


def read_announcements(settings: Settings, refused: Refusals) -> tuple[list[ModelAnnouncement], int]:
    """Every valid announcement on the (single-partition) topic in offset order, whatever its key,
    and the offset after the last record; each malformed one goes to ``refused``."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(settings.topics.model_updates, 0)
    consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        announcements = []
        while consumer.position(tp) < end:
            for record in consumer.poll(timeout_ms=1000).get(tp, []):
                try:
                    announcements.append(parse_announcement(record.value))
                except AnnouncementRefused as exc:
                    refused(exc)
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
    candidates: Iterable[ModelAnnouncement],
    load: Callable[[ModelAnnouncement], ModelArtifact],
    refused: Refusals,
) -> tuple[ModelAnnouncement, ModelArtifact] | None:
    """The first candidate whose artifact ``load`` accepts, with the artifact; each refusal goes to
    ``refused`` and is logged."""
    for announcement in candidates:
        try:
            return announcement, load(announcement)
        except AnnouncementRefused as exc:
            refused(exc)
            log.error(
                "announced model %s refused, trying the one announced before it: %s",
                announcement.version,
                exc,
            )
    return None


def newest_sound_announcement(
    settings: Settings, refused: Refusals
) -> tuple[tuple[ModelAnnouncement, ModelArtifact] | None, int]:
    """The newest announced model that verifies (None if none does), and the offset after the topic's
    last record."""
    announcements, end = read_announcements(settings, refused)
    return first_sound(newest_first(announcements), lambda a: load_announced(settings, a), refused), end


def serving_model(settings: Settings, refused: Refusals) -> ModelArtifact | None:
    """What the workers serve: the newest announced model that verifies, else the artifact at
    ``STREAMREC_MODEL_PATH`` if there is one."""
    sound, _ = newest_sound_announcement(settings, refused)
    if sound is not None:
        return sound[1]
    if (settings.models.fallback / "manifest.json").is_file():
        return load_artifact(settings.models.fallback)
    return None
