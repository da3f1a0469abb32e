"""The training step's written-out backward pass against autograd, and its forward pass against the
inference API."""

import pytest
import torch

from models.losses import BPRMax, SampledCrossEntropy
from models.model import GRU4Rec, ModelConfig
from models.training_step import TrainingStep
from schemas.events import EventType
from tests.support.drawn_losses import drawn_bpr_max, drawn_cross_entropy

N_ITEMS, BATCH, ALPHA = 30, 4, 0.5


def make_model(**overrides) -> GRU4Rec:
    config = ModelConfig(**{"n_items": N_ITEMS, "hidden": 8, "n_layers": 2, **overrides})
    model = GRU4Rec(config, torch.Generator().manual_seed(0))
    with torch.no_grad():  # as if trained: non-click events and biases matter
        model.event_weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
        model.item_bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    return model


def step_for(model: GRU4Rec, loss_name: str, item_counts: torch.Tensor, seed: int = 5) -> TrainingStep:
    loss = (
        SampledCrossEntropy(item_counts, ALPHA, logq=1.0)
        if loss_name == "cross-entropy"
        else BPRMax(bpreg=1.0, elu_param=0.5)
    )
    return TrainingStep(model, loss, BATCH, torch.Generator().manual_seed(seed))


def random_step(seed: int, n_sample: int = 6) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "items": torch.randint(N_ITEMS, (BATCH,), generator=g),
        "event_types": torch.randint(len(EventType), (BATCH,), generator=g),
        "targets": torch.randint(N_ITEMS, (BATCH,), generator=g),
        "negatives": torch.randint(N_ITEMS, (n_sample,), generator=g),  # repeats likely
    }


def autograd_step(model, loss_name, item_counts, items, event_types, hidden, targets, negatives, masks):
    """The step as autograd sees it: nn.GRUCell, every drawn column scored, the drawn losses."""
    table = model.item_weight if model.input_weight is None else model.input_weight
    x = model.add_event_vectors(table[items], event_types) * masks[0]
    states = []
    for layer, cell in enumerate(model.cells):
        x = cell(x, hidden[:, layer]) * masks[layer + 1]
        states.append(x)
    out = torch.cat([targets, negatives])
    scores = x @ model.item_weight[out].t() + model.item_bias[out]
    if loss_name == "cross-entropy":
        loss = drawn_cross_entropy(scores, targets, negatives, item_counts, ALPHA, logq=1.0)
    else:
        loss = drawn_bpr_max(scores, bpreg=1.0, elu_param=0.5)
    return loss / BATCH, torch.stack(states, dim=1)


def dropout_masks(model: GRU4Rec, generator: torch.Generator) -> list:
    """The masks the step draws, in its order: the input's, then each layer's (1.0: no dropout)."""
    config = model.config
    rates = [config.dropout_embed] + [config.dropout_hidden] * config.n_layers
    sizes = [config.input_size] + [config.hidden] * config.n_layers
    return [
        (torch.rand(BATCH, size, generator=generator) < 1 - p) / (1 - p) if p > 0 else 1.0
        for p, size in zip(rates, sizes, strict=True)
    ]


@pytest.mark.parametrize("loss_name", ["cross-entropy", "bpr-max"])
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"n_layers": 1},
        {"embedding": 5},
        {"dropout_embed": 0.3, "dropout_hidden": 0.4},
        {"embedding": 5, "n_layers": 1, "dropout_hidden": 0.25},
    ],
)
@pytest.mark.parametrize("n_sample", [6, 0])
@pytest.mark.parametrize("clicks_only", [False, True])
def test_the_gradients_are_those_of_autograd_over_every_drawn_column(
    loss_name, overrides, n_sample, clicks_only
):
    model = make_model(**overrides)
    item_counts = torch.randint(1, 40, (N_ITEMS,), generator=torch.Generator().manual_seed(4))
    step = step_for(model, loss_name, item_counts)
    inputs = random_step(seed=11, n_sample=n_sample)
    if clicks_only:
        inputs["event_types"] = None
    hidden = torch.randn(BATCH, *model.state_shape, generator=torch.Generator().manual_seed(12))
    same_draws = torch.Generator().set_state(step.generator.get_state())

    result = step(hidden=hidden, **inputs)
    written_out = {name: p.grad for name, p in model.named_parameters()}
    for rows in result.rows:
        name = next(name for name, p in model.named_parameters() if p is rows.param)
        written_out[name] = torch.zeros_like(rows.param).index_put_((rows.index,), rows.grad)
    model.zero_grad()
    masks = dropout_masks(model, same_draws)
    loss, states = autograd_step(model, loss_name, item_counts, hidden=hidden, masks=masks, **inputs)
    loss.backward()

    torch.testing.assert_close(result.loss, loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.hidden, states.detach(), rtol=1e-6, atol=1e-7)
    for name, p in model.named_parameters():
        if p.grad is None or (name == "event_weight" and clicks_only):
            assert written_out[name] is None or not written_out[name].any(), name
        else:
            torch.testing.assert_close(written_out[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("overrides", [{}, {"embedding": 5}])
def test_only_the_scored_items_biases_take_a_step(overrides):
    model = make_model(**overrides)
    step = step_for(model, "cross-entropy", torch.ones(N_ITEMS))
    inputs = random_step(seed=3)
    inputs["items"] = torch.tensor([29, 28, 27, 26])  # items asked for only as inputs
    inputs["targets"], inputs["negatives"] = torch.tensor([1, 2, 1, 3]), torch.tensor([3, 4, 4, 5, 0, 0])
    result = step(hidden=model.zero_state(BATCH), **inputs)
    by_param = {id(rows.param): rows for rows in result.rows}
    assert by_param[id(model.item_bias)].index.tolist() == [0, 1, 2, 3, 4, 5]
    scored_and_inputs = [0, 1, 2, 3, 4, 5] + ([26, 27, 28, 29] if model.input_weight is None else [])
    assert by_param[id(model.item_weight)].index.tolist() == scored_and_inputs


@pytest.mark.parametrize("overrides", [{}, {"embedding": 5}, {"n_layers": 1}])
def test_without_dropout_a_step_advances_the_state_to_the_bits_of_inference(overrides):
    model = make_model(**overrides)
    step = step_for(model, "cross-entropy", torch.ones(N_ITEMS))
    trained_state = inferred_state = model.zero_state(BATCH)
    for t in range(6):
        inputs = random_step(seed=t)
        trained_state = step(hidden=trained_state, **inputs).hidden
        inferred_state = model.step(inferred_state, inputs["items"], inputs["event_types"])
        assert torch.equal(trained_state, inferred_state)


def test_click_events_add_nothing_so_click_only_input_is_plain_gru4rec():
    model = make_model()
    step = step_for(model, "cross-entropy", torch.ones(N_ITEMS))
    inputs = random_step(seed=1)
    inputs["event_types"] = torch.full((BATCH,), int(EventType.CLICK))
    with_clicks = step(hidden=model.zero_state(BATCH), **inputs)
    assert not model.event_weight.grad.any()  # the click vector is no parameter: nothing to learn
    inputs["event_types"] = None
    without = step(hidden=model.zero_state(BATCH), **inputs)
    assert torch.equal(with_clicks.hidden, without.hidden) and torch.equal(with_clicks.loss, without.loss)
