"""A prebuilt approximate index shipped in an artifact, against the real broker: a hot swap to a model
whose index is corrupted is refused and the old model keeps serving; one whose index verifies is
swapped in."""

import json
import urllib.request

import pytest

from bench.stream_data import swap_artifact
from models.ann import AnnParams
from models.artifact import load_artifact
from models.shipped_index import INDEX_FILE, ship_index
from schemas.events import Event
from schemas.model_updates import ANNOUNCEMENT_KEY
from schemas.recommendations import Recommendation
from tests.support.kafka_io import TopicReader, produce, produce_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def served_version(worker) -> str | None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}/readyz", timeout=5
    ) as r:
        return json.load(r)["model_version"]


def refusals(worker, reason: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}/metrics", timeout=5
    ) as r:
        lines = r.read().decode().splitlines()
    prefix = f'streamrec_model_swap_refused_total{{reason="{reason}"}}'
    return sum(float(line.split()[-1]) for line in lines if line.startswith(prefix))


def shipped_model(store, source, name: str, seed: int):
    """Another model version of ``source``'s catalog in ``store/name``, with its index shipped."""
    announcement = swap_artifact(source, store, name, seed=seed)
    ship_index(store / name, load_artifact(store / name), AnnParams())
    return announcement


def test_a_corrupted_shipped_index_is_refused_and_a_sound_one_is_swapped_in(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    old = load_artifact(setup.model_path)
    store = setup.env_path("STREAMREC_MODEL_STORE")
    corrupted = shipped_model(store, setup.model_path, "corrupted", seed=21)
    index_file = store / "corrupted" / INDEX_FILE
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    sound = shipped_model(store, setup.model_path, "sound", seed=22)
    updates = setup.env()["STREAMREC_MODEL_UPDATES_TOPIC"]
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker(STREAMREC_SCORER="ann").start()
    try:
        worker.wait_ready()
        produce(kafka_bootstrap, [(updates, ANNOUNCEMENT_KEY, corrupted.to_bytes())])
        wait_for(lambda: refusals(worker, "bad_index") == 1, what="the corrupted index's refusal")
        vocab = old.item_ids
        events = [Event(f"e{n}", f"u{n % 5}", vocab[n], 1_700_000_000.0 + n) for n in range(10)]
        produce_events(kafka_bootstrap, setup.topics["click"], events)
        lists = [Recommendation.from_bytes(m.value) for m in recs.read(len(events), worker=worker)]
        assert {r.model_version for r in lists} == {old.version} and served_version(worker) == old.version

        produce(kafka_bootstrap, [(updates, ANNOUNCEMENT_KEY, sound.to_bytes())])
        wait_for(lambda: served_version(worker) == sound.version, what="the swap to the sound model")
        assert refusals(worker, "bad_index") == 1
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()
