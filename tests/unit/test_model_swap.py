"""Announced artifacts are checked before they can serve; the holder swaps only between batches."""

import asyncio
import hashlib
import json
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import torch

from models.artifact import save_artifact
from models.model import GRU4Rec, ModelConfig
from schemas.errors import InvalidMessage
from schemas.json_schemas import load_schema
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement, history_key, is_history_key
from streamer.common.settings import Settings
from streamer.registry import AnnouncementRefused, first_sound, load_announced, newest_first
from streamer.worker.engine import Recommender
from streamer.worker.metrics import REGISTRY
from streamer.worker.model_feed import (
    LOADER_NICENESS,
    ModelFeed,
    ModelHolder,
    between_batches,
    count_refusal,
    lower_loader_priority,
)
from streamer.worker.policy import ServingPolicy


@pytest.fixture
def store(tmp_path):
    model = GRU4Rec(ModelConfig(n_items=12, hidden=4), generator=torch.Generator().manual_seed(0)).eval()
    version = save_artifact(tmp_path / "v1", model, [f"i{n}" for n in range(12)], {}, "fp", {})
    return tmp_path, version


def announce(store, path="v1", **changes) -> ModelAnnouncement:
    folder, version = store
    manifest = json.loads((folder / "v1" / "manifest.json").read_text())
    fields = {"version": version, "path": path, "checksum": manifest["weights_sha256"], "created_at": 1.0}
    return ModelAnnouncement(**{**fields, **changes})


def settings_for(store) -> Settings:
    return Settings.from_env({"STREAMREC_MODEL_STORE": str(store[0])})


def test_a_sound_announcement_loads(store):
    artifact = load_announced(settings_for(store), announce(store))
    assert artifact.version == store[1]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda a, folder: ModelAnnouncement(a.version, "missing", a.checksum, 1.0), "unloadable"),
        (lambda a, folder: ModelAnnouncement(a.version, a.path, "0" * 64, 1.0), "checksum_mismatch"),
        (lambda a, folder: ModelAnnouncement("other", a.path, a.checksum, 1.0), "version_mismatch"),
    ],
)
def test_unsound_announcements_are_refused_with_a_reason(store, damage, reason):
    announcement = damage(announce(store), store[0])
    with pytest.raises(AnnouncementRefused) as refused:
        load_announced(settings_for(store), announcement)
    assert refused.value.reason == reason


def test_tampered_weights_are_refused(store):
    folder, _ = store
    shutil.copytree(folder / "v1", folder / "bad")
    weights = folder / "bad" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(AnnouncementRefused) as refused:
        load_announced(settings_for(store), announce(store, path="bad"))
    assert refused.value.reason == "unloadable"


def test_the_holder_switches_only_when_the_next_batch_starts(store):
    folder, _ = store
    holder = ModelHolder(ServingPolicy())
    first = load_announced(settings_for(store), announce(store))
    holder.stage(Recommender(first, holder.policy), folder / "v1")
    assert holder.recommender is None and holder.version == first.version
    assert holder.for_next_batch().version == first.version
    assert holder.recommender.version == first.version


def test_announcements_round_trip_and_match_their_schema(store):
    announcement = announce(store, metrics={"recall@20": 0.5})
    raw = announcement.to_bytes()
    assert ModelAnnouncement.from_bytes(raw) == announcement
    jsonschema.validate(json.loads(raw), load_schema("model-update"))
    with pytest.raises(InvalidMessage):
        ModelAnnouncement.from_bytes(b'{"version": "v"}')


def test_the_newest_announcement_comes_first_and_a_repeated_one_counts_where_it_was_last(store):
    a, b = announce(store, version="a", path="a"), announce(store, version="b", path="b")
    # The retrainer publishes each under "current" and under its history key: a, a, b, b.
    assert newest_first([a, a, b, b]) == [b, a]
    # A rollback re-announces a after b: a is the newest again.
    assert newest_first([a, b, a]) == [a, b]


def test_the_walk_back_skips_refused_announcements_and_counts_them(store):
    folder, _ = store
    good = announce(store)
    corrupt = announce(store, version="v-corrupt", path="corrupt")
    missing = announce(store, version="v-missing", path="missing")
    shutil.copytree(folder / "v1", folder / "corrupt")
    weights = folder / "corrupt" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    settings = settings_for(store)
    refused_before = refused_count("unloadable")

    chosen = first_sound(
        newest_first([good, corrupt, missing]), lambda a: load_announced(settings, a), count_refusal
    )

    assert chosen is not None and chosen[0] == good and chosen[1].version == good.version
    assert refused_count("unloadable") - refused_before == 2


def test_no_sound_announcement_leaves_the_choice_to_the_fallback(store):
    settings = settings_for(store)
    missing = announce(store, path="missing")
    assert first_sound([missing], lambda a: load_announced(settings, a), count_refusal) is None
    assert first_sound([], lambda a: load_announced(settings, a), count_refusal) is None


def test_history_keys_are_told_apart_from_the_current_key():
    assert is_history_key(history_key("20261122T080000Z-3f2a1c9e"))
    assert not is_history_key(ANNOUNCEMENT_KEY) and not is_history_key(None)


def refused_count(reason: str) -> float:
    return REGISTRY.get_sample_value("streamrec_model_swap_refused_total", {"reason": reason}) or 0.0


def retrained(store, name: str, item_ids: list[str]) -> ModelAnnouncement:
    """Another model in the store, of ``item_ids``, announced."""
    folder, _ = store
    model = GRU4Rec(ModelConfig(n_items=len(item_ids), hidden=4), generator=torch.Generator().manual_seed(1))
    version = save_artifact(folder / name, model.eval(), item_ids, {}, "fp", {})
    checksum = json.loads((folder / name / "manifest.json").read_text())["weights_sha256"]
    return ModelAnnouncement(version=version, path=name, checksum=checksum, created_at=2.0)


@pytest.mark.parametrize("added", [[], ["new-1", "new-2"]])
def test_a_retrained_vocabulary_that_extends_the_serving_one_reuses_its_ids(store, added):
    feed = ModelFeed(settings_for(store))
    serving = load_announced(settings_for(store), announce(store))
    feed.holder.stage(feed.recommender(serving), store[0] / "v1")
    announcement = retrained(store, "v2", [*serving.item_ids, *added])
    artifact = asyncio.run(feed._prepare(announcement)).artifact
    assert artifact.version == announcement.version and artifact.item_ids == [*serving.item_ids, *added]
    assert artifact.item_ids[0] is serving.item_ids[0]
    assert artifact.item_index == {item: i for i, item in enumerate(artifact.item_ids)}
    assert len(serving.item_index) == len(serving.item_ids)  # the serving model's own, untouched


def test_a_consistently_forged_vocabulary_is_refused_as_unloadable(store):
    folder, _ = store
    announcement = retrained(store, "v2", [f"i{n}" for n in range(12)])
    manifest = json.loads((folder / "v2" / "manifest.json").read_text())
    forged = b'"i0"\n' * 12
    (folder / "v2" / "vocabulary.jsonl").write_bytes(forged)
    manifest["vocabulary_sha256"] = hashlib.sha256(forged).hexdigest()
    (folder / "v2" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnnouncementRefused) as refused:
        asyncio.run(ModelFeed(settings_for(store))._prepare(announcement))
    assert refused.value.reason == "unloadable" and "distinct" in str(refused.value)


def test_steps_on_the_loop_let_other_tasks_run_between_them():
    order: list[str] = []

    def steps():
        for _ in range(3):
            order.append("step")
            yield
        return "made"

    async def other_task():
        while len(order) < 30:
            order.append("other")
            await asyncio.sleep(0)

    async def both():
        other = asyncio.create_task(other_task())
        made = await between_batches(steps())
        await other
        return made

    assert asyncio.run(both()) == "made"
    first, second = [i for i, kind in enumerate(order) if kind == "step"][:2]
    assert "other" in order[first:second]


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is Linux's")
def test_the_loader_thread_runs_at_the_lowest_priority_and_the_rest_of_the_worker_does_not():
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = niceness()
    with ThreadPoolExecutor(1, initializer=lower_loader_priority) as loader:
        assert loader.submit(niceness).result() == LOADER_NICENESS
    assert niceness() == before
