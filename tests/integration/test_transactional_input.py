"""Input written in Kafka transactions (Kafka Streams, Flink and other exactly-once producers) holds
offsets without records (the commit and abort markers): each is crossed, never sought back to forever,
and events of an aborted transaction are never read (the worker reads committed records only)."""

import pytest
from kafka import KafkaProducer

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from tests.support.kafka_io import TopicReader

pytestmark = pytest.mark.e2e


def test_events_from_transactional_producers_all_get_lists(kafka_bootstrap, streamer_setup, unique_name):
    setup = streamer_setup
    items = load_artifact(setup.model_path).item_ids
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap.split(","), transactional_id=unique_name("tx"), acks="all"
    )
    committed, aborted = [], []
    try:
        producer.init_transactions()
        for n in range(6):
            events = [Event(f"t{n}-{m}", f"user-{m % 4}", items[m], 1_700_000_000.0 + m) for m in range(5)]
            producer.begin_transaction()
            for event in events:
                producer.send(setup.topics["click"], key=event.user_id.encode(), value=event.to_bytes())
            producer.flush()
            if n == 3:
                producer.abort_transaction()
                aborted += events
            else:
                producer.commit_transaction()
                committed += events
    finally:
        producer.close()

    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(committed), worker=worker)]
        assert recs.read_quiet(2.0) == []
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()
    assert sorted(r.event_id for r in lists) == sorted(e.event_id for e in committed)
