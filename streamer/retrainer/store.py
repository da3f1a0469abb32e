"""The model store (a directory shared with the streamers) and the announcements that point into it."""

import os
import time
from pathlib import Path

from models.artifact import ModelArtifact, load_artifact, save_artifact
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement, history_key
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
    """Publish ``artifact`` on the compacted model-updates topic, under ``current`` and under its
    version's history key, and wait until Kafka has both."""
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
        # ``current`` first: running workers follow that key, so a crash before the history record
        # still reaches every worker; the history record lets a restarted one walk back past a bad
        # later announcement (streamer.model_swap).
        for key in (ANNOUNCEMENT_KEY, history_key(announcement.version)):
            producer.send(settings.model_updates_topic, key=key, value=announcement.to_bytes()).get(30)
    finally:
        producer.close()
    return announcement
