"""GRU4Rec's inference API: stepping, scoring, the same bits in any batch (the training step's forward
pass against it: test_models_training_step)."""

import pytest
import torch

from models.model import GRU4Rec, ModelConfig, extend_items
from models.scoring import exact_top_k, top_k_by_blocks
from schemas.events import EventType

N_ITEMS = 30


def make_model(seed: int = 0, **overrides) -> GRU4Rec:
    config = ModelConfig(**{"n_items": N_ITEMS, "hidden": 8, "n_layers": 2, **overrides})
    model = GRU4Rec(config, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # as if trained: non-click events and biases matter
        model.event_weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
        model.item_bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 2))
    return model.eval()


def random_sequences(steps: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(N_ITEMS, (steps, batch), generator=g)
    types = torch.randint(len(EventType), (steps, batch), generator=g)
    return items, types


def test_encode_equals_stepping_one_event_at_a_time():
    model = make_model()
    items, types = random_sequences(steps=7, batch=1, seed=3)
    hidden = model.zero_state(1)
    for t in range(len(items)):
        hidden = model.step(hidden, items[t], types[t])
    encoded = model.encode(items[:, 0], types[:, 0])
    assert encoded.shape == model.state_shape == (2, 8)
    assert torch.equal(encoded, hidden[0])


# Micro-batch sizes the streamer can see (STREAMREC_BATCH_MAX is 256 by default), around the
# serving block and the row counts at which matrix kernels change.
BATCH_SIZES = (1, 2, 3, 7, 16, 17, 31, 32, 33, 64, 255, 256, 300)
POOL = 300  # candidate rows; the first PROBES are the rows followed from batch to batch
PROBES = 5


def batch_around_probes(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool indices of a batch of ``size`` rows: the probes (as many as fit) at random positions, random
    other pool rows elsewhere; and the batch position of each probe that fits."""
    positions = torch.randperm(size, generator=generator)[:PROBES]
    order = torch.randint(PROBES, POOL, (size,), generator=generator)
    order[positions] = torch.arange(len(positions))
    return order, positions


@pytest.mark.parametrize("overrides", [{}, {"embedding": 5}, {"hidden": 100, "n_layers": 1}])
def test_a_row_steps_to_the_same_bits_in_any_batch(overrides):
    model = make_model(**overrides)
    g = torch.Generator().manual_seed(7)
    hidden = torch.randn(POOL, *model.state_shape, generator=g)
    [items], [types] = random_sequences(steps=1, batch=POOL, seed=7)
    alone = torch.cat(
        [model.step(hidden[i : i + 1], items[i : i + 1], types[i : i + 1]) for i in range(PROBES)]
    )
    for size in BATCH_SIZES:
        order, positions = batch_around_probes(size, g)
        stepped = model.step(hidden[order], items[order], types[order])
        assert torch.equal(stepped[positions], alone[: len(positions)]), f"batch of {size}"


@pytest.mark.parametrize("n_items", [N_ITEMS, 2_933, 20_000])  # 20,000: the top-K by blocks
def test_a_row_scores_the_same_bits_in_any_batch(n_items):
    model = make_model(n_items=n_items, hidden=100, n_layers=1)
    g = torch.Generator().manual_seed(8)
    hidden = torch.randn(POOL, *model.state_shape, generator=g)
    exclude = torch.randint(-1, n_items, (POOL,), generator=g)
    k = 20

    def scored(rows: torch.Tensor) -> list[torch.Tensor]:
        return [
            model.scores(hidden[rows]),
            *exact_top_k(model, hidden[rows], k),
            *exact_top_k(model, hidden[rows], k, exclude[rows]),
        ]

    alone = [
        torch.cat(parts) for parts in zip(*(scored(torch.tensor([i])) for i in range(PROBES)), strict=True)
    ]
    for size in BATCH_SIZES:
        order, positions = batch_around_probes(size, g)
        for in_batch, expected in zip(scored(order), alone, strict=True):
            assert torch.equal(in_batch[positions], expected[: len(positions)]), f"batch of {size}"


def test_top_k_returns_the_best_scores_and_honours_exclusions():
    model = make_model()
    items, types = random_sequences(steps=1, batch=3, seed=5)
    hidden = model.step(model.zero_state(3), items[0], types[0])
    scores = model.scores(hidden)
    top_scores, top_items = exact_top_k(model, hidden, 5)
    expected_scores, expected_items = torch.topk(scores, 5, dim=1)
    assert torch.equal(top_scores, expected_scores) and torch.equal(top_items, expected_items)

    exclude = torch.stack([expected_items[0, 0], torch.tensor(-1), expected_items[2, 0]])
    _, kept = exact_top_k(model, hidden, 5, exclude)
    assert expected_items[0, 0] not in kept[0] and expected_items[2, 0] not in kept[2]
    assert torch.equal(kept[1], expected_items[1])
    assert torch.equal(kept[0], torch.topk(scores[0], 6).indices[1:])

    all_scores, all_items = exact_top_k(model, hidden, 10 * N_ITEMS)
    assert all_items.shape == (3, N_ITEMS)
    assert torch.equal(all_scores, scores.sort(dim=1, descending=True).values)


@pytest.mark.parametrize("n_items", [16_384, 50_000, 100_003])
def test_top_k_of_a_large_catalog_by_blocks_is_the_plain_top_k(n_items):
    model = GRU4Rec(ModelConfig(n_items=n_items, hidden=16), generator=torch.Generator().manual_seed(n_items))
    model.eval()
    items = torch.randint(0, n_items, (33,), generator=torch.Generator().manual_seed(1))
    hidden = model.step(model.zero_state(33), items, torch.zeros(33, dtype=torch.long))
    scores = model.scores(hidden)
    for k in (1, 20, 100):
        expected_scores, expected_items = torch.topk(scores, k, dim=1)
        for top_scores, top_items in (top_k_by_blocks(scores, k), exact_top_k(model, hidden, k)):
            assert torch.equal(top_scores, expected_scores)
            assert torch.equal(top_items, expected_items)
    exclude = items.clone()
    _, kept = exact_top_k(model, hidden, 20, exclude)
    assert not (kept == exclude.unsqueeze(1)).any()


def test_zero_state_and_shapes():
    model = make_model()
    assert model.zero_state(3).shape == (3, 2, 8)
    assert model.zero_state(3).dtype == torch.float32
    assert not model.zero_state(2).any()
    assert model.n_items == N_ITEMS


def test_initialisation_matches_the_reference_ranges():
    model = GRU4Rec(ModelConfig(n_items=500, hidden=20), torch.Generator().manual_seed(0))
    bound = (6 / (500 + 20)) ** 0.5
    assert model.item_weight.abs().max() <= bound and model.item_weight.abs().max() > 0.9 * bound
    gate_bound = (6 / (20 + 20)) ** 0.5
    assert model.cells[0].weight_ih.abs().max() <= gate_bound
    assert not model.item_bias.any() and not model.event_weight.any() and not model.cells[0].bias_ih.any()


def test_extend_items_keeps_known_items_and_adds_fresh_rows():
    model = make_model()
    bigger = extend_items(model, N_ITEMS + 4, torch.Generator().manual_seed(9)).eval()
    assert bigger.n_items == N_ITEMS + 4
    items, types = random_sequences(steps=3, batch=2, seed=6)
    a, b = model.zero_state(2), bigger.zero_state(2)
    for t in range(3):
        a, b = model.step(a, items[t], types[t]), bigger.step(b, items[t], types[t])
    assert torch.equal(a, b)
    assert torch.equal(model.scores(a), bigger.scores(b)[:, :N_ITEMS])
    assert bigger.item_weight[N_ITEMS:].abs().sum() > 0
    with pytest.raises(ValueError):
        extend_items(model, N_ITEMS - 1)


@pytest.mark.parametrize(
    "bad", [{"n_items": 0}, {"hidden": -1}, {"embedding": -2}, {"dropout_hidden": 1.0}, {"n_layers": 1.5}]
)
def test_model_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        ModelConfig(**{"n_items": 5, **bad})
