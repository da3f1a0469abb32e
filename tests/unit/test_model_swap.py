"""Announced artifacts are checked before they can serve; the holder swaps only between batches."""

import json
import shutil

import jsonschema
import pytest
import torch

from models.artifact import save_artifact
from models.model import GRU4Rec, ModelConfig
from schemas.errors import InvalidMessage
from schemas.json_schemas import load_schema
from schemas.model_updates import ModelAnnouncement
from streamer.engine import ServingPolicy
from streamer.model_swap import AnnouncementRefused, load_announced
from streamer.serving import ModelHolder
from streamer.settings import Settings


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
    holder.stage(first, folder / "v1")
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
