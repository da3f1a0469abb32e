"""Offsets are committed only past records that are done: a batch that failed, or records held back
after a gap, are read again after a crash (Faust alone would have committed past them)."""

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from tests.support.kafka_io import TopicReader, produce_events

pytestmark = pytest.mark.e2e


def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})
        admin.alter_configs([resource])
    finally:
        admin.close()


def test_events_of_a_batch_that_failed_are_read_again_after_a_crash(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    artifact = load_artifact(setup.model_path)
    events = [Event(f"e{n}", f"user-{n % 7}", artifact.item_ids[n], 1_700_000_000.0 + n) for n in range(30)]
    # Lists are ~0.5 KB: the broker refuses every batch of them.
    set_max_message_bytes(kafka_bootstrap, setup.topics["recommendations"], 200)
    produce_events(kafka_bootstrap, setup.topics["click"], events)
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        worker.wait_ready()
        failures = 0
        while failures < 3:  # several failed tries, each past Faust's commit interval of 2.8 s
            assert recs.read_quiet(1.0) == []
            failures = worker.log_tail(1_000_000).count("MessageSizeTooLarge")
        worker.kill()
        set_max_message_bytes(kafka_bootstrap, setup.topics["recommendations"], 1_048_588)
        worker = setup.worker().start()
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=worker)]
    finally:
        worker.stop()
        recs.close()
    assert {r.event_id for r in lists} == {e.event_id for e in events}


def test_a_crash_between_a_dropped_record_and_its_re_read_loses_nothing(kafka_bootstrap, streamer_setup):
    """Faust 0.15 can drop records it fetched when a rebalance interrupts a fetch. The guard seeks
    back to the first one; a crash before the re-read must not have committed past it."""
    from kafka import KafkaProducer

    setup = streamer_setup
    items = load_artifact(setup.model_path).item_ids
    events = [Event(f"e{n}", f"user-{n % 5}", items[n], 1_700_000_000.0 + n) for n in range(20)]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
    for event in events:  # all on partition 0, so the dropped offset is known
        producer.send(setup.topics["click"], key=event.user_id.encode(), value=event.to_bytes(), partition=0)
    producer.flush()
    producer.close()

    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    drop = {"DROP_TOPIC": setup.topics["click"], "DROP_PARTITION": "0", "DROP_OFFSET": "6"}
    dropping = setup.worker(**drop)
    dropping.module = "tests.support.dropping_worker"
    dropping.start()
    try:
        dropping.process.wait(timeout=120)  # it SIGKILLs itself after two commits past the gap
    finally:
        if dropping.alive():
            dropping.kill()
    assert dropping.process.returncode == -9, dropping.log_tail()
    worker = setup.worker().start()
    try:
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=worker)]
    finally:
        worker.stop()
        recs.close()
    assert {r.event_id for r in lists} == {e.event_id for e in events}
