"""Business rules, new items and cold start against a real broker and a running worker: a sold-out
item leaves the lists and the query API's answers and comes back, a bought item is not recommended
to its buyer within the window, an unknown item gets a list and a counter but no dead letter, and a
worker with no model at all serves popularity from its first event."""

import json
import time
import urllib.request

import pytest

from models.artifact import load_artifact
from schemas.events import Event, EventType
from schemas.recommendations import Recommendation
from streamer.cli import main
from tests.support.kafka_io import TopicReader, produce_events
from tests.support.waiting import wait_for
from tests.support.worker_metrics import metric_value

pytestmark = pytest.mark.e2e


class Shop:
    """Events in, one list out per event, on a running worker."""

    def __init__(self, bootstrap: str, setup, worker) -> None:
        self.bootstrap, self.setup, self.worker = bootstrap, setup, worker
        self.lists = TopicReader(bootstrap, setup.topics["recommendations"])
        self.sent = 0

    def event(self, user: str, item: str, kind: EventType = EventType.CLICK) -> Recommendation:
        self.sent += 1
        event = Event(f"e{self.sent}", user, item, time.time(), kind)
        produce_events(
            self.bootstrap, self.setup.topics["buy" if kind == EventType.BUY else "click"], [event]
        )
        [message] = self.lists.read(1, worker=self.worker)
        listed = Recommendation.from_bytes(message.value)
        assert listed.event_id == event.event_id
        return listed

    def answer(self, user: str) -> list[str]:
        """The items of the query API's answer for ``user``."""
        port = self.worker.env["STREAMREC_WEB_PORT"]
        url = f"http://127.0.0.1:{port}/users/{user}/recommendations?k=1000"
        with urllib.request.urlopen(url, timeout=10) as response:
            return [item["item_id"] for item in json.load(response)["items"]]

    def catalog(self, *argv: str) -> None:
        topic = self.setup.env()["STREAMREC_CATALOG_TOPIC"]
        assert main(["catalog", *argv, "--topic", topic, "--bootstrap-servers", self.bootstrap]) == 0


def items(listed: Recommendation) -> list[str]:
    return [item.item_id for item in listed.items]


def test_sold_out_bought_and_new_items_in_the_stream(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    catalog = load_artifact(setup.model_path).item_ids
    setup.top_k = len(catalog)  # every listable item is listed: an absence is the rules' doing
    worker = setup.worker(STREAMREC_EXCLUDE_BOUGHT_S="3600").start()
    shop = Shop(kafka_bootstrap, setup, worker)
    sold_out, bought = catalog[3], catalog[4]
    try:
        worker.wait_ready()
        assert sold_out in items(shop.event("alice", catalog[0]))

        shop.catalog("set", sold_out, "--unavailable")
        wait_for(lambda: metric_value(worker, "streamrec_catalog_unavailable_items") == 1, 30, "the sale")
        listed = shop.event("alice", catalog[1])
        assert sold_out not in items(listed) and len(listed.items) == len(catalog) - 1
        assert sold_out not in shop.answer("alice") and len(shop.answer("alice")) == len(catalog) - 1
        shop.catalog("set", sold_out, "--available")
        wait_for(lambda: metric_value(worker, "streamrec_catalog_unavailable_items") == 0, 30, "restock")
        assert sold_out in shop.answer("alice")
        assert sold_out in items(shop.event("alice", catalog[2]))

        assert bought not in items(shop.event("bob", bought, EventType.BUY))
        assert bought not in items(shop.event("bob", catalog[5])) and bought not in shop.answer("bob")
        assert bought in items(shop.event("carol", catalog[5]))

        new = shop.event("dave", "an-item-added-this-morning")
        assert new.basis == "popularity" and new.items
        assert metric_value(worker, "streamrec_unknown_items_total") == 1
        followed = shop.event("dave", catalog[6])
        assert followed.basis == "model"
        assert metric_value(worker, "streamrec_dead_letters_total") == 0
    finally:
        assert worker.stop() == 0, worker.log_tail()
        shop.lists.close()


def test_a_worker_with_no_model_serves_popularity_from_its_first_event(
    kafka_bootstrap, streamer_setup, tmp_path
):
    setup = streamer_setup
    setup.model_path = tmp_path / "no-model-yet"
    worker = setup.worker().start()
    shop = Shop(kafka_bootstrap, setup, worker)
    try:
        assert worker.wait_ready()["model_version"] == "none"
        first = shop.event("u1", "shoes")
        assert first.basis == "popularity" and first.model_version == "none" and items(first) == ["shoes"]
        shop.event("u2", "socks")
        shop.event("u3", "socks")
        assert items(shop.event("u4", "hat"))[0] == "socks"
    finally:
        assert worker.stop() == 0, worker.log_tail()
        shop.lists.close()
