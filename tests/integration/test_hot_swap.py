"""Retraining and hot swap against the real broker: while events flow, the retrainer promotes a
new model, every streamer switches between micro-batches, no event is lost or applied twice, and
users keep their history (re-encoded under the new weights, not reset)."""

import hashlib
import json
import shutil
import threading
import time
import urllib.request
from collections import Counter

import pytest
import torch
from kafka.admin import NewTopic

from bench.stream_data import swap_artifact
from models.artifact import load_artifact
from schemas.events import Event
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement, history_key
from schemas.recommendations import Recommendation
from streamer.common.admin import create_missing_topics
from streamer.common.settings import Settings
from streamer.registry import announce
from streamer.worker.state import UserState
from tests.support.kafka_io import TopicReader, latest_per_key, produce, produce_events
from tests.support.waiting import wait_for
from tests.support.worker_metrics import metric_value

pytestmark = pytest.mark.e2e

N_USERS = 30


def stream_of_events(artifact, count: int) -> list[Event]:
    vocab = artifact.item_ids
    return [
        Event(
            f"e{n}",
            f"u{n % N_USERS}",
            vocab[(n * 7 + (n // N_USERS) ** 2) % len(vocab)],
            1_700_000_000.0 + n / 10,
        )
        for n in range(count)
    ]


def paced(bootstrap: str, topic: str, events: list[Event], per_second: float) -> None:
    chunk = max(1, int(per_second / 10))
    for start in range(0, len(events), chunk):
        produce_events(bootstrap, topic, events[start : start + chunk])
        time.sleep(0.1)  # pacing the producer, not waiting for readiness


def served_version(worker) -> str | None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}/readyz", timeout=5
    ) as r:
        return json.load(r)["model_version"]


def encode(artifact, items: list[str]) -> torch.Tensor:
    index = artifact.item_index
    return artifact.model.encode(
        torch.tensor([index[i] for i in items]), torch.zeros(len(items), dtype=torch.long)
    )


@pytest.mark.parametrize("scorer", ["exact", "ann"])  # ann: each swap builds a fresh index first
def test_a_promoted_model_is_swapped_in_while_events_flow(kafka_bootstrap, streamer_setup, scorer):
    setup = streamer_setup
    old = load_artifact(setup.model_path)
    events = stream_of_events(old, 2400)
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    workers = [setup.worker(name, STREAMREC_SCORER=scorer).start() for name in ("w0", "w1")]
    retrainer = setup.retrainer(
        STREAMREC_RETRAIN_EVERY_EVENTS="600",
        STREAMREC_RETRAIN_EVERY_S="0",
        STREAMREC_RETRAIN_EPOCHS="1",
        STREAMREC_RETRAIN_HOLDOUT="0.2",
        STREAMREC_RETRAIN_MARGIN="1.0",  # promote whatever it trains: this test is about the swap
    ).start()
    try:
        for worker in workers:
            worker.wait_ready()
        producer = threading.Thread(target=paced, args=(kafka_bootstrap, setup.topics["click"], events, 200))
        producer.start()
        lists: list[Recommendation] = []
        while len({r.event_id for r in lists}) < len(events):
            lists += [Recommendation.from_bytes(m.value) for m in recs.read(1, worker=workers[0])]
        producer.join()
        newest = max(r.model_version for r in lists)  # versions start with their UTC timestamp
        assert newest != old.version, "no model was promoted while events flowed"
        # A promotion after the last event is staged but has no batch to run yet: at least `newest`.
        wait_for(lambda: all(served_version(w) >= newest for w in workers), what="every worker to switch")
    finally:
        assert retrainer.stop() == 0, retrainer.log_tail()
        for worker in workers:
            assert worker.stop() == 0, worker.log_tail()
        recs.close()

    # No event lost, none applied twice.
    assert Counter(r.event_id for r in lists) == Counter(e.event_id for e in events)
    # Per user, lists never go back to an older version, and everyone started on the old one.
    by_offset = sorted(lists, key=lambda r: (r.source.partition, r.source.offset))
    for user in {e.user_id for e in events}:
        versions = [r.model_version for r in by_offset if r.user_id == user]
        assert versions == sorted(versions) and versions[0] == old.version and versions[-1] == newest

    # Users seen before the swap carry their history into the new model: their state is the new
    # model's encoding of everything they did, not of what came after the swap.
    new = load_artifact(setup.env_path("STREAMREC_MODEL_STORE") / newest)
    changelog = latest_per_key(
        kafka_bootstrap, setup.changelog_topic, {f"u{u}".encode() for u in range(N_USERS)}
    )
    for u in range(N_USERS):
        state = UserState.from_bytes(changelog[f"u{u}".encode()])
        mine = [e.item_id for e in events if e.user_id == f"u{u}"]
        assert state.model_version == newest and state.recent_items == mine
        assert torch.allclose(torch.from_numpy(state.hidden), encode(new, mine), atol=1e-5, rtol=0)


def test_a_tampered_or_mismatched_artifact_is_refused_and_the_old_model_keeps_serving(
    kafka_bootstrap, streamer_setup
):
    setup = streamer_setup
    old = load_artifact(setup.model_path)
    store = setup.env_path("STREAMREC_MODEL_STORE")
    tampered = store / "tampered"
    shutil.copytree(setup.model_path, tampered)
    weights = tampered / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8
    weights.write_bytes(bytes(data))
    announcements = [
        ModelAnnouncement("v-tampered", "tampered", old.checksum, time.time()),
        # A sound artifact, but not the one announced.
        ModelAnnouncement(
            "v-other", str(setup.model_path), hashlib.sha256(b"other").hexdigest(), time.time()
        ),
    ]
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        worker.wait_ready()
        updates = setup.env()["STREAMREC_MODEL_UPDATES_TOPIC"]
        produce(kafka_bootstrap, [(updates, ANNOUNCEMENT_KEY, a.to_bytes()) for a in announcements])
        wait_for(
            lambda: metric_value(worker, "streamrec_model_swap_refused_total") >= 2, what="both refusals"
        )
        assert metric_value(worker, "streamrec_model_swap_refused_total", 'reason="unloadable"') == 1
        assert metric_value(worker, "streamrec_model_swap_refused_total", 'reason="checksum_mismatch"') == 1
        events = stream_of_events(old, 20)
        produce_events(kafka_bootstrap, setup.topics["click"], events)
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=worker)]
        assert served_version(worker) == old.version
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()
    assert {r.model_version for r in lists} == {old.version}


def test_a_restarted_worker_serves_the_newest_announced_model_that_verifies(kafka_bootstrap, streamer_setup):
    """Even after compaction has dropped the good model's ``current`` announcement: its history
    record remains."""
    setup = streamer_setup
    settings = Settings.from_env(setup.env())
    store = settings.models.store
    quickly_compacted_updates_topic(settings)
    first = setup.worker().start()
    try:
        first.wait_ready()
        good = swap_artifact(setup.model_path, store, "good", seed=1)
        announce(settings, load_artifact(store / "good"), store / "good")
        wait_for(lambda: served_version(first) == good.version, what="the switch to the good model")

        swap_artifact(setup.model_path, store, "corrupt", seed=2)
        corrupt = load_artifact(store / "corrupt")
        weights = store / "corrupt" / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
        refused = announce(settings, corrupt, store / "corrupt")
        wait_for(lambda: metric_value(first, "streamrec_model_swap_refused_total") >= 1, what="the refusal")
        assert served_version(first) == good.version
    finally:
        assert first.stop() == 0, first.log_tail()
    wait_for(
        lambda: compacted(kafka_bootstrap, settings.topics.model_updates, refused),
        timeout_s=90,
        what="compaction to drop the good model's current announcement",
    )

    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    restarted = setup.worker().start()
    try:
        assert restarted.wait_ready()["model_version"] == good.version
        events = stream_of_events(load_artifact(setup.model_path), 20)
        produce_events(kafka_bootstrap, setup.topics["click"], events)
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=restarted)]
    finally:
        assert restarted.stop() == 0, restarted.log_tail()
        recs.close()
    assert {r.model_version for r in lists} == {good.version}


def quickly_compacted_updates_topic(settings: Settings) -> None:
    """The model-updates topic, with segments that roll after 100 ms, so the broker's log cleaner
    (every 15 s by default) compacts announcements during the test rather than days later."""
    config = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
    create_missing_topics(settings, [NewTopic(settings.topics.model_updates, 1, 1, topic_configs=config)])


def compacted(bootstrap: str, topic: str, newest: ModelAnnouncement) -> bool:
    """Whether the topic holds no ``current`` announcement but ``newest``. Each call appends
    ``newest``'s history record again (a no-op for workers) so that the segment holding its
    ``current`` record rolls and becomes cleanable: the cleaner never touches the active segment."""
    produce(bootstrap, [(topic, history_key(newest.version), newest.to_bytes())])
    reader = TopicReader(bootstrap, topic)
    try:
        current = [r.value for r in reader.read_quiet(1.0) if r.key == ANNOUNCEMENT_KEY]
    finally:
        reader.close()
    return current == [newest.to_bytes()]
