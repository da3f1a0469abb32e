"""Synthetic session data with learnable structure, for tests and benchmarks (never for claims
about accuracy). Each item has a few likely successors, so a GRU has something to learn."""

from pathlib import Path

import numpy as np
import torch

from models.model import GRU4Rec


def write_synthetic_sessions(
    path: Path,
    n_items: int = 200,
    n_sessions: int = 1000,
    mean_length: float = 6.0,
    seed: int = 0,
    start_time: float = 1_700_000_000.0,
) -> Path:
    """Write a ``SessionId ItemId Time`` TSV of random walks over an item successor graph."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, n_items, size=(n_items, 3))
    rows = ["SessionId\tItemId\tTime"]
    t = start_time
    for session in range(n_sessions):
        length = max(2, int(rng.poisson(mean_length)))
        item = int(rng.integers(n_items))
        for _ in range(length):
            rows.append(f"{session}\t{item}\t{t:.3f}")
            t += float(rng.exponential(30.0))
            jump = rng.random() < 0.1
            item = int(rng.integers(n_items)) if jump else int(successors[item, rng.integers(3)])
    path.write_text("\n".join(rows) + "\n")
    return path


def cluster_item_vectors_(model: GRU4Rec, seed: int = 0, items_per_topic: int = 200) -> None:
    """Give ``model``'s item matrix the shape trained embeddings have: items around topic directions,
    popularity in the bias (Zipf-like). An untrained model's isotropic random item vectors have no
    neighbourhoods, which no approximate search can exploit and no trained model looks like."""
    g = torch.Generator().manual_seed(seed)
    n_items, dim = model.item_weight.shape
    topics = torch.randn(max(1, n_items // items_per_topic), dim, generator=g) / dim**0.5
    assignment = torch.randint(len(topics), (n_items,), generator=g)
    with torch.no_grad():
        model.item_weight.copy_(3 * topics[assignment] + torch.randn(n_items, dim, generator=g) / dim**0.5)
        ranks = torch.randperm(n_items, generator=g).double() + 1
        model.item_bias.copy_((-0.5 * torch.log(ranks)).float())
