"""``streamrec retrainer``: consume click and buy events into the window; every so many events or
seconds, run a cycle; promote, store and announce a candidate that is not worse than the serving
model by more than the margin. With no model serving, the first cycle runs once the window holds
enough events, and its candidate is promoted without a comparison. Each decision is logged with its
figures and exported as metrics."""

import asyncio
import json
import logging
import signal
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from models.train import TrainConfig
from schemas.errors import InvalidMessage
from schemas.events import Event
from streamer.common.admin import ensure_model_updates_topic, ensure_topics, partition_counts
from streamer.common.kafka_config import aiokafka_config
from streamer.common.settings import Settings
from streamer.registry import announce, serving_model, store_artifact
from streamer.retrainer.cycle import Decision, run_cycle
from streamer.retrainer.schedule import crossed_a_tenth, first_model_needs, training_due
from streamer.retrainer.window import EventWindow

log = logging.getLogger("streamrec.retrainer")

REGISTRY = CollectorRegistry()
EVENTS_IN = Counter("streamrec_retrainer_events", "Events added to the window", registry=REGISTRY)
INVALID = Counter("streamrec_retrainer_invalid_events", "Input skipped as invalid", registry=REGISTRY)
DECISIONS = Counter("streamrec_retrainer_decisions", "Cycles by outcome", ["decision"], registry=REGISTRY)
CANDIDATE = Gauge(
    "streamrec_retrainer_candidate_metric", "Last candidate, held out", ["metric"], registry=REGISTRY
)
SERVING = Gauge(
    "streamrec_retrainer_serving_metric", "Serving model, held out", ["metric"], registry=REGISTRY
)
CYCLE_SECONDS = Gauge("streamrec_retrainer_cycle_seconds", "Duration of the last cycle", registry=REGISTRY)
WINDOW_SIZE = Gauge("streamrec_retrainer_window_events", "Events in the window", registry=REGISTRY)


class Retrainer:
    def __init__(self, settings: Settings, preset: TrainConfig | None = None) -> None:
        self.settings = settings
        self.preset = preset  # hyperparameters to train with; None: the serving model's
        self.window = EventWindow(settings.retrainer.dir, settings.retrainer.window_events)
        self.current = serving_model(settings, lambda refusal: None)
        self.last_cycle = time.monotonic()
        self.kinds = settings.topic_kinds()

    def due(self) -> bool:
        return training_due(
            self.settings.retrainer,
            serving=self.current is not None,
            window_events=self.window.count,
            new_events=self.window.events_since_training(),
            seconds_since_cycle=time.monotonic() - self.last_cycle,
        )

    def ingest(self, records: dict) -> None:
        """Add a fetch (aiokafka ``getmany`` result) to the window with the positions after it."""
        rows, positions = [], {}
        for tp, messages in records.items():
            for message in messages:
                try:
                    event = Event.from_bytes(message.value or b"", self.kinds[tp.topic])
                except InvalidMessage:
                    INVALID.inc()  # the streamer dead-letters it; nothing to learn from here
                else:
                    rows.append((event, tp.topic, tp.partition, message.offset))
            positions[(tp.topic, tp.partition)] = messages[-1].offset + 1
        before = self.window.count
        EVENTS_IN.inc(self.window.add(rows, positions))
        WINDOW_SIZE.set(self.window.count)
        needed = first_model_needs(self.settings.retrainer)
        if self.current is None and crossed_a_tenth(before, self.window.count, needed):
            log.info(
                "no model serves yet: %d of the %d events needed for the first model in the window",
                min(self.window.count, needed),
                needed,
            )

    def cycle(self) -> Decision:
        candidate = run_cycle(self.window.events(), self.current, self.settings, self.preset)
        decision = candidate.decision
        self.window.mark_trained()
        self.last_cycle = time.monotonic()
        if decision.promote:
            result = candidate.result
            artifact = store_artifact(
                self.settings,
                result.model,
                result.item_ids,
                result.config.to_dict(),
                candidate.train_log.fingerprint,
                {k: float(v) for k, v in decision.candidate.items()},
                candidate.popular_items,
            )
            announce(self.settings, artifact)
            if self.current is None:
                log.info("first model %s announced", artifact.version)
            self.current = artifact
        record_decision(decision, self.current.version if self.current else None)
        return decision


def record_decision(decision: Decision, serving_version: str | None) -> None:
    DECISIONS.labels("promoted" if decision.promote else "rejected").inc()
    CYCLE_SECONDS.set(decision.seconds)
    for name, value in decision.candidate.items():
        CANDIDATE.labels(name).set(value)
    for name, value in (decision.current or {}).items():
        SERVING.labels(name).set(value)
    log.info(
        "retrain decision %s",
        json.dumps({"promoted": decision.promote, "serving_version": serving_version, **decision.__dict__}),
    )


async def run(settings: Settings, preset: TrainConfig | None = None) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    ensure_topics(settings)
    ensure_model_updates_topic(settings)
    retrainer = Retrainer(settings, preset)
    start_http_server(settings.retrainer.metrics_port, registry=REGISTRY)
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **aiokafka_config(settings))
    await consumer.start()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    try:
        counts = partition_counts(settings, list(retrainer.kinds))
        tps = [TopicPartition(topic, p) for topic, n in counts.items() for p in range(n)]
        consumer.assign(tps)
        saved = retrainer.window.positions()
        for tp in tps:
            if (tp.topic, tp.partition) in saved:
                consumer.seek(tp, saved[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)
        log.info(
            "retrainer ready: %d events in the window, serving model %s",
            retrainer.window.count,
            retrainer.current.version if retrainer.current else None,
        )
        if retrainer.current is None:
            log.info(
                "no model serves yet: the first is trained once the window holds %d events",
                first_model_needs(settings.retrainer),
            )
        while not stopping.is_set():
            records = await consumer.getmany(timeout_ms=500)
            if records:
                retrainer.ingest(records)
            if retrainer.due():
                await asyncio.to_thread(retrainer.cycle)
    finally:
        await consumer.stop()
        retrainer.window.close()
