"""A batch whose lists Kafka refuses is never committed: after a crash and the fix, every event
still gets its list (Faust alone would have committed past it and lost the events)."""

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
