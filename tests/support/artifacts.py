"""Small real model artifacts built in memory, for tests of the serving code."""

import torch

from models.artifact import ModelArtifact
from models.model import GRU4Rec, ModelConfig

N_ITEMS = 40


def make_artifact(seed: int = 0, n_items: int = N_ITEMS, version: str = "v1") -> ModelArtifact:
    torch.manual_seed(seed)
    model = GRU4Rec(
        ModelConfig(n_items=n_items, hidden=8, n_layers=2), generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():  # give buys their own direction, as a trained model would
        model.event_weight.normal_(0, 0.5)
    model.eval()
    item_ids = [f"item-{i}" for i in range(n_items)]
    return ModelArtifact(
        model=model,
        item_ids=item_ids,
        item_index={item: i for i, item in enumerate(item_ids)},
        version=version,
        config={},
        metrics={},
        data_fingerprint="test",
        checksum="0" * 64,
    )
