"""Artifacts: round trip, atomic replacement, and refusal of anything damaged or inconsistent."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors

from models.artifact import ArtifactError, load_artifact, save_artifact
from models.model import GRU4Rec, ModelConfig
from models.popularity import POPULAR_ITEMS_MAX

ITEMS = [f"item-{i}" for i in range(12)]
POPULAR = [("item-3", 9.5), ("new-item", 4.0), ("item-0", 4.0), ("item-7", 0.25)]
# Written by save_artifact before artifacts held popularity (commit a689bc6): weights and manifest only.
ARTIFACT_BEFORE_POPULARITY = Path(__file__).parent / "fixtures" / "artifact-before-popularity"


@pytest.fixture
def model() -> GRU4Rec:
    model = GRU4Rec(ModelConfig(n_items=len(ITEMS), hidden=6, n_layers=2, dropout_hidden=0.3))
    with torch.no_grad():
        model.event_weight.normal_()
    return model


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "artifact"
    save_artifact(path, model, ITEMS, {"epochs": 3}, "f" * 64, {"recall@20": 0.5}, POPULAR)
    return path


def rewrite_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def replace_weights(path, data: bytes):
    """Swap in other weights and update the checksum and version to match (a consistent forgery)."""
    (path / "weights.safetensors").write_bytes(data)
    checksum = hashlib.sha256(data).hexdigest()
    rewrite_manifest(path, weights_sha256=checksum, version=f"20260101T000000Z-{checksum[:8]}")


def replace_popularity(path, entries) -> None:
    """Swap in another popularity file and update its checksum to match (a consistent forgery)."""
    data = json.dumps(entries).encode()
    (path / "popularity.json").write_bytes(data)
    rewrite_manifest(path, popularity_sha256=hashlib.sha256(data).hexdigest())


def test_round_trip(tmp_path, model):
    path = tmp_path / "nested" / "artifact"
    version = save_artifact(path, model, ITEMS, {"epochs": 3}, "f" * 64, {"recall@20": 0.5})
    artifact = load_artifact(path)
    checksum = hashlib.sha256((path / "weights.safetensors").read_bytes()).hexdigest()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", version) and version.endswith(checksum[:8])
    assert artifact.version == version and artifact.checksum == checksum
    assert artifact.item_ids == ITEMS and artifact.item_index["item-3"] == 3
    assert artifact.config == {"epochs": 3} and artifact.metrics == {"recall@20": 0.5}
    assert artifact.data_fingerprint == "f" * 64
    assert not artifact.model.training
    assert artifact.model.config == model.config
    for name, value in model.state_dict().items():
        assert torch.equal(artifact.model.state_dict()[name], value), name
    items, types = torch.tensor([1, 5, 2]), torch.tensor([0, 1, 0])
    assert torch.equal(artifact.model.encode(items, types), model.eval().encode(items, types))


def test_saving_over_an_artifact_replaces_it_and_leaves_no_temporary_files(tmp_path, model, saved):
    with torch.no_grad():
        model.item_bias.fill_(1.0)
    version = save_artifact(saved, model, ITEMS, {}, "0" * 64, {})
    assert load_artifact(saved).version == version
    assert torch.equal(load_artifact(saved).model.item_bias, model.item_bias)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_a_failed_save_leaves_the_old_artifact(tmp_path, model, saved):
    before = load_artifact(saved).version
    with pytest.raises(TypeError):
        save_artifact(saved, model, ITEMS, {"not json": object()}, "0" * 64, {})
    assert load_artifact(saved).version == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_save_rejects_a_vocabulary_that_does_not_fit(tmp_path, model):
    with pytest.raises(ValueError):
        save_artifact(tmp_path / "a", model, ITEMS[:-1], {}, "", {})
    with pytest.raises(ValueError):
        save_artifact(tmp_path / "a", model, [*ITEMS[:-1], "item-0"], {}, "", {})


def test_tampered_weights_are_refused(saved):
    data = bytearray((saved / "weights.safetensors").read_bytes())
    data[-5] ^= 0x01
    (saved / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(saved)


def test_truncated_weights_are_refused(saved):
    data = (saved / "weights.safetensors").read_bytes()
    (saved / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(saved)
    replace_weights(saved, data[: len(data) // 2])  # even with a matching checksum
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        load_artifact(saved)


def test_weights_of_the_wrong_shape_are_refused(saved):
    other = GRU4Rec(ModelConfig(n_items=len(ITEMS), hidden=4, n_layers=2))
    replace_weights(saved, save_safetensors({k: v.contiguous() for k, v in other.state_dict().items()}))
    with pytest.raises(ArtifactError, match="needs"):
        load_artifact(saved)


def test_non_finite_weights_are_refused(saved, model):
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state["item_bias"][0] = float("nan")
    replace_weights(saved, save_safetensors(state))
    with pytest.raises(ArtifactError, match="NaN"):
        load_artifact(saved)


def test_huge_but_finite_weights_whose_sum_overflows_still_load(saved, model):
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state["item_bias"][:] = 3e38  # the fast check's sum is inf; the exact one finds every value finite
    replace_weights(saved, save_safetensors(state))
    assert torch.equal(load_artifact(saved).model.item_bias, state["item_bias"])


def test_a_plain_models_manifest_has_no_seen_bonus_and_a_bonus_comes_back(tmp_path, model):
    plain, boosted = tmp_path / "plain", tmp_path / "boosted"
    save_artifact(plain, model, ITEMS, {}, "f" * 64, {})
    assert not {"seen_bonus", "seen_decay"} & set(json.loads((plain / "manifest.json").read_text())["model"])
    model.config = ModelConfig(**{**model.config.to_dict(), "seen_bonus": 1.25, "seen_decay": 0.9})
    save_artifact(boosted, model, ITEMS, {}, "f" * 64, {})
    boosted_table, plain_table = (
        load_artifact(boosted).model.item_table(),
        load_artifact(plain).model.item_table(),
    )
    assert (boosted_table.seen_bonus, boosted_table.seen_decay) == (1.25, 0.9)
    assert (plain_table.seen_bonus, plain_table.seen_decay) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 1, "item_ids": ITEMS[:-1]}, "vocabulary"),
        ({"format_version": 1, "item_ids": [*ITEMS[:-1], "item-0"]}, "distinct"),
        ({"format_version": 1, "item_ids": [*ITEMS[:-1], 7]}, "distinct strings"),
        ({"format_version": 1}, "'item_ids' missing"),
        ({"vocabulary_sha256": None}, "vocabulary_sha256 is not a sha256"),
        ({"vocabulary_sha256": "0" * 64}, r"vocabulary\.jsonl: sha256 .* does not match"),
        ({"version": "20260101T000000Z-00000000"}, "version"),
        ({"weights_sha256": "0" * 64}, "checksum"),
        ({"weights_sha256": "0" * 64, "version": "20260101T000000Z-00000000"}, "sha256"),
        ({"format_version": 3}, "format_version 3"),
        ({"model": {"n_items": len(ITEMS), "hidden": 6, "n_layers": 2, "colour": "red"}}, "model config"),
        ({"metrics": None}, "metrics"),
        ({"architecture": "transformer"}, "unknown architecture 'transformer'"),
    ],
)
def test_edited_manifests_are_refused(saved, changes, message):
    rewrite_manifest(saved, **changes)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(saved)


def test_the_manifest_names_the_architecture_and_older_artifacts_without_it_load_as_gru4rec(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest.pop("architecture") == "gru4rec"
    (saved / "manifest.json").write_text(json.dumps(manifest))
    assert isinstance(load_artifact(saved).model, GRU4Rec)


def test_a_model_config_that_does_not_fit_the_weights_is_refused(saved):
    rewrite_manifest(saved, model={"n_items": len(ITEMS), "hidden": 6, "n_layers": 1})
    with pytest.raises(ArtifactError, match="tensors"):
        load_artifact(saved)


def test_unreadable_manifests_and_missing_artifacts_are_refused(tmp_path, saved):
    with pytest.raises(ArtifactError, match="cannot read"):
        load_artifact(tmp_path / "nowhere")
    (saved / "manifest.json").write_text('{"format_version": 1, ')
    with pytest.raises(ArtifactError, match="JSON"):
        load_artifact(saved)
    (saved / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="object"):
        load_artifact(saved)


def test_popular_items_come_back_in_order_and_may_name_items_the_model_does_not_know(saved):
    assert load_artifact(saved).popular_items == POPULAR


def test_an_artifact_written_without_popular_items_loads_with_an_empty_list(tmp_path, model):
    save_artifact(tmp_path / "a", model, ITEMS, {}, "0" * 64, {})
    assert load_artifact(tmp_path / "a").popular_items == []


def test_an_artifact_written_before_popularity_existed_loads_with_an_empty_list():
    assert not (ARTIFACT_BEFORE_POPULARITY / "popularity.json").exists()
    artifact = load_artifact(ARTIFACT_BEFORE_POPULARITY)
    assert artifact.item_ids == ["a", "b", "c"] and artifact.popular_items == []


def test_a_format_1_artifact_with_the_vocabulary_in_its_manifest_still_loads_and_only_that_one(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["vocabulary_sha256"]
    (saved / "vocabulary.jsonl").unlink()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="'vocabulary_sha256' missing"):
        load_artifact(saved)
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1, "item_ids": ITEMS}))
    assert load_artifact(saved).item_ids == ITEMS


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (['"item-0"'] * len(ITEMS), "distinct"),
        ([f'"item-{i}"' for i in range(len(ITEMS) - 1)], "vocabulary has 11 items"),
        (['"item-0", "item-1"', *[f'"item-{i}"' for i in range(2, len(ITEMS))]], "not one JSON string"),
        ([*[f'"item-{i}"' for i in range(len(ITEMS) - 1)], "7"], "not one JSON string"),
    ],
)
def test_a_consistently_forged_vocabulary_is_refused(saved, lines, reason):
    data = "\n".join(lines).encode()
    (saved / "vocabulary.jsonl").write_bytes(data)
    rewrite_manifest(saved, vocabulary_sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError, match=reason):
        load_artifact(saved)


def test_a_tampered_popularity_file_is_refused(saved):
    data = (saved / "popularity.json").read_bytes()
    (saved / "popularity.json").write_bytes(data.replace(b"item-3", b"item-4"))
    with pytest.raises(ArtifactError, match=r"popularity\.json: sha256 .* does not match"):
        load_artifact(saved)


def test_a_missing_popularity_file_is_refused(saved):
    (saved / "popularity.json").unlink()
    with pytest.raises(ArtifactError, match=r"cannot read .*popularity\.json"):
        load_artifact(saved)


def test_a_popularity_file_the_manifest_does_not_vouch_for_is_refused(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["popularity_sha256"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="no popularity_sha256"):
        load_artifact(saved)


def test_a_popularity_checksum_that_is_not_a_digest_is_refused(saved):
    rewrite_manifest(saved, popularity_sha256=7)
    with pytest.raises(ArtifactError, match="popularity_sha256 is not a sha256"):
        load_artifact(saved)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"item-3": 1.0}, "pairs"),
        ([["item-3", 1.0, "extra"]], "pairs"),
        ([[3, 1.0]], "string ids"),
        ([["item-3", float("nan")]], "finite"),
        ([["item-3", 10**400]], "finite"),
        ([["item-3", -1.0]], ">= 0"),
        ([["item-3", True]], "finite numbers"),
        ([["item-3", 1.0], ["item-4", 2.0]], "ordered by weight"),
        ([["item-3", 2.0], ["item-3", 1.0]], "distinct"),
        ([[f"i{n}", 1.0] for n in range(POPULAR_ITEMS_MAX + 1)], f"at most {POPULAR_ITEMS_MAX}"),
    ],
)
def test_a_forged_popularity_file_with_a_matching_checksum_is_refused_for_its_content(
    saved, entries, message
):
    replace_popularity(saved, entries)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(saved)


def test_unparsable_popularity_is_refused(saved):
    data = b'[["item-3", 1.0'
    (saved / "popularity.json").write_bytes(data)
    rewrite_manifest(saved, popularity_sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError, match=r"popularity\.json: not valid JSON"):
        load_artifact(saved)


@pytest.mark.parametrize(
    "popular",
    [[("a", 1.0), ("b", 2.0)], [("a", 1.0), ("a", 0.5)], [("a", float("inf"))]],
)
def test_save_refuses_popular_items_it_could_not_load_back(tmp_path, model, popular):
    with pytest.raises(ValueError, match="popular items"):
        save_artifact(tmp_path / "a", model, ITEMS, {}, "0" * 64, {}, popular)
    assert not (tmp_path / "a").exists()
