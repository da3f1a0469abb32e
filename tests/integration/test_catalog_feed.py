"""The item catalog against the real broker: what ``streamrec catalog`` publishes, a starting feed
reads whole before returning, and a following feed sees later changes and tombstones; a worker reads
the catalog before it is ready and follows it while it runs."""

import asyncio
import time

import pytest
from kafka.admin import ConfigResource, KafkaAdminClient, NewTopic

from schemas.catalog import CatalogEntry
from streamer.cli import main
from streamer.common.admin import create_missing_topics
from streamer.common.settings import Settings
from streamer.worker.catalog import CatalogFeed
from tests.support.waiting import wait_for
from tests.support.worker_metrics import metric_value

FOLLOW_WITHIN_S = 30.0


def publish(bootstrap: str, topic: str, *argv: str) -> None:
    assert main(["catalog", *argv, "--topic", topic, "--bootstrap-servers", bootstrap]) == 0


def feed_for(bootstrap: str, topic: str) -> CatalogFeed:
    return CatalogFeed(
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAMREC_CATALOG_TOPIC": topic})
    )


def cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        configs = admin.describe_configs([ConfigResource("topic", topic, ["cleanup.policy"])])["topic"]
    finally:
        admin.close()
    return configs[topic]["cleanup.policy"]["value"]


@pytest.mark.integration
def test_a_starting_feed_has_read_everything_the_command_published(kafka_bootstrap, unique_name, tmp_path):
    topic = unique_name("catalog")
    publish(kafka_bootstrap, topic, "set", "a", "b", "c", "--unavailable", "--attr", "brand=acme")
    publish(kafka_bootstrap, topic, "set", "b", "--available")
    publish(kafka_bootstrap, topic, "delete", "c")
    items = tmp_path / "items.csv"
    items.write_text("item_id,available,price\n" + "".join(f"f{n},false,{n}\n" for n in range(500)))
    publish(kafka_bootstrap, topic, "load", str(items))
    assert cleanup_policy(kafka_bootstrap, topic) == "compact"

    feed = feed_for(kafka_bootstrap, topic)
    feed.load_initial()
    catalog = feed.catalog
    assert catalog.unavailable == {"a", *(f"f{n}" for n in range(500))}
    assert catalog.get("a") == CatalogEntry(False, {"brand": "acme"})
    assert catalog.get("b") == CatalogEntry(True)
    assert catalog.get("c") is None
    assert catalog.get("f499") == CatalogEntry(False, {"price": 499})


@pytest.mark.integration
def test_a_feed_on_a_missing_topic_creates_it_compacted_and_starts_empty(kafka_bootstrap, unique_name):
    topic = unique_name("catalog")
    feed = feed_for(kafka_bootstrap, topic)
    feed.load_initial()
    assert (feed.catalog.unavailable, len(feed.catalog)) == (frozenset(), 0)
    assert cleanup_policy(kafka_bootstrap, topic) == "compact"


@pytest.mark.integration
def test_a_catalog_topic_of_several_partitions_is_read_whole(kafka_bootstrap, unique_name):
    topic = unique_name("catalog")
    feed = feed_for(kafka_bootstrap, topic)
    create_missing_topics(feed.settings, [NewTopic(topic, 3, 1, topic_configs={"cleanup.policy": "compact"})])
    items = [f"item-{n}" for n in range(30)]
    publish(kafka_bootstrap, topic, "set", *items, "--unavailable")
    feed.load_initial()
    assert feed.catalog.unavailable == set(items)


@pytest.mark.integration
def test_a_following_feed_sees_a_later_change_and_a_tombstone(kafka_bootstrap, unique_name):
    topic = unique_name("catalog")
    publish(kafka_bootstrap, topic, "set", "a", "--unavailable")
    feed = feed_for(kafka_bootstrap, topic)
    feed.load_initial()
    assert feed.catalog.unavailable == {"a"}

    async def until(condition, what: str) -> None:
        deadline = time.monotonic() + FOLLOW_WITHIN_S
        while not condition():
            assert time.monotonic() < deadline, f"the feed did not see {what} within {FOLLOW_WITHIN_S} s"
            await asyncio.sleep(0.05)  # poll interval

    async def scenario() -> None:
        following = asyncio.create_task(feed.follow())
        try:
            await asyncio.to_thread(publish, kafka_bootstrap, topic, "set", "b", "--unavailable")
            await until(lambda: feed.catalog.unavailable == {"a", "b"}, "b sold out")
            await asyncio.to_thread(publish, kafka_bootstrap, topic, "delete", "a")
            await until(lambda: feed.catalog.unavailable == {"b"}, "the tombstone of a")
            await asyncio.to_thread(publish, kafka_bootstrap, topic, "set", "b", "--available")
            await until(lambda: feed.catalog.unavailable == frozenset(), "b back in stock")
            assert not following.done(), following
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    asyncio.run(scenario())
    assert feed.catalog.version == 4


def unavailable_gauge(worker) -> float:
    return metric_value(worker, "streamrec_catalog_unavailable_items")


@pytest.mark.e2e
def test_a_worker_has_read_the_catalog_when_it_is_ready_and_follows_it(kafka_bootstrap, streamer_setup):
    topic = streamer_setup.env()["STREAMREC_CATALOG_TOPIC"]
    publish(kafka_bootstrap, topic, "set", "a", "b", "--unavailable")
    worker = streamer_setup.worker().start()
    try:
        worker.wait_ready()
        assert unavailable_gauge(worker) == 2
        publish(kafka_bootstrap, topic, "set", "c", "--unavailable")
        wait_for(lambda: unavailable_gauge(worker) == 3, FOLLOW_WITHIN_S, "c sold out")
        publish(kafka_bootstrap, topic, "delete", "a")
        wait_for(lambda: unavailable_gauge(worker) == 2, FOLLOW_WITHIN_S, "a deleted")
    finally:
        assert worker.stop() == 0
