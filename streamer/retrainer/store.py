"""The model store (a directory shared with the streamers) and the announcements that point into it."""

import os
import time
from pathlib import Path

from models.artifact import ModelArtifact, load_artifact, save_artifact
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement
from streamer.kafka_config import kafka_python_config
from streamer.retrainer.cycle import Candidate
from streamer.settings import Settings


def publish_to_store(store: Path, candidate: Candidate) -> ModelArtifact:
    """Write the candidate's artifact to ``store/<version>``, atomically, and return it as loaded
    back from the store (so what is announced is exactly what the streamers will read)."""
    result = candidate.result
    metrics = {k: float(v) for k, v in candidate.decision.candidate.items()}
    staging = store / f".incoming-{os.getpid()}-{time.monotonic_ns()}"
    version = save_artifact(
        staging,
        result.model,
        result.item_ids,
        result.config.to_dict(),
        candidate.train_log.fingerprint,
        metrics,
    )
    final = store / version
    os.replace(staging, final)  # a rename within one directory: readers see all of it or nothing
    return load_artifact(final)


def announce(settings: Settings, artifact: ModelArtifact, path: Path) -> ModelAnnouncement:
    """Publish ``artifact`` on the compacted model-updates topic and wait until Kafka has it."""
    from kafka import KafkaProducer

    announcement = ModelAnnouncement(
        version=artifact.version,
        path=os.path.relpath(path, settings.model_store),
        checksum=artifact.checksum,
        created_at=time.time(),
        metrics={k: float(v) for k, v in artifact.metrics.items()},
    )
    producer = KafkaProducer(acks="all", **kafka_python_config(settings))
    try:
        producer.send(settings.model_updates_topic, key=ANNOUNCEMENT_KEY, value=announcement.to_bytes()).get(
            30
        )
    finally:
        producer.close()
    return announcement
