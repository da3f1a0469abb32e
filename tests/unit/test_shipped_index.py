"""A prebuilt index shipped in an artifact: the lists of a freshly built one, and refused (as an
artifact error, like bad weights) when corrupted, built from other weights, or unreadable."""

from pathlib import Path

import pytest
import torch

from models.ann import AnnParams, AnnScorer
from models.artifact import ArtifactError, load_artifact, save_artifact
from models.model import GRU4Rec, ModelConfig
from models.scorer_choice import ScorerChoice, build_scorer
from models.shipped_index import INDEX_FILE, INDEX_MANIFEST_FILE, load_shipped_index, ship_index
from models.synthetic import cluster_item_vectors_
from streamer.common.settings import Settings
from streamer.registry import store_artifact

N_ITEMS = 3_000


def stored_model(path: Path, seed: int) -> Path:
    model = GRU4Rec(ModelConfig(n_items=N_ITEMS, hidden=16), torch.Generator().manual_seed(seed)).eval()
    cluster_item_vectors_(model, seed=seed)
    save_artifact(path, model, [f"i{n}" for n in range(N_ITEMS)], {}, "test", {})
    return path


@pytest.fixture
def shipped(tmp_path) -> Path:
    path = stored_model(tmp_path / "model", seed=1)
    ship_index(path, load_artifact(path), AnnParams())
    return path


def test_a_shipped_index_serves_the_lists_of_a_freshly_built_one(shipped):
    artifact = load_artifact(shipped)
    index = load_shipped_index(shipped, artifact)
    items = artifact.model.item_table()
    queries = items.vectors[:64] + 0.1
    choice = ScorerChoice(kind="ann")
    _, from_shipped = build_scorer(items, choice, index).top_k(queries, 20)
    _, from_built = AnnScorer.build(items, choice.ann).top_k(queries, 20)
    assert torch.equal(from_shipped, from_built)


def test_an_artifact_without_an_index_has_none_to_load(tmp_path):
    path = stored_model(tmp_path / "model", seed=1)
    assert load_shipped_index(path, load_artifact(path)) is None


def test_a_corrupted_index_is_refused(shipped):
    data = bytearray((shipped / INDEX_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (shipped / INDEX_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 does not match"):
        load_shipped_index(shipped, load_artifact(shipped))


def test_an_index_built_from_other_weights_is_refused(shipped, tmp_path):
    other = stored_model(tmp_path / "other", seed=2)
    for name in (INDEX_FILE, INDEX_MANIFEST_FILE):
        (other / name).write_bytes((shipped / name).read_bytes())
    with pytest.raises(ArtifactError, match="not built from these weights"):
        load_shipped_index(other, load_artifact(other))


def test_an_unreadable_index_manifest_is_refused(shipped):
    (shipped / INDEX_MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_shipped_index(shipped, load_artifact(shipped))


@pytest.mark.parametrize(("scorer", "shipped"), [("ann", True), ("exact", False)])
def test_the_registry_ships_an_index_with_a_stored_model_exactly_when_workers_would_use_one(
    tmp_path, scorer, shipped
):
    settings = Settings.from_env({"STREAMREC_MODEL_STORE": str(tmp_path), "STREAMREC_SCORER": scorer})
    model = GRU4Rec(ModelConfig(n_items=N_ITEMS, hidden=16), torch.Generator().manual_seed(3)).eval()
    artifact = store_artifact(settings, model, [f"i{n}" for n in range(N_ITEMS)], {}, "test", {})
    path = tmp_path / artifact.version
    assert (path / INDEX_FILE).is_file() == shipped
    assert (load_shipped_index(path, artifact) is not None) == shipped
