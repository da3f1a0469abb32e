"""Training: determinism, event-type vectors, warm start, and that it learns at all."""

import dataclasses

import numpy as np
import pytest
import torch

from models.data import events_to_tsv, parse_events
from models.evaluate import evaluate_model, evaluate_most_popular
from models.synthetic import write_synthetic_sessions
from models.train import PRESETS, EpochEnd, TrainConfig, train_model

TINY = TrainConfig(hidden=16, batch_size=8, n_sample=32, epochs=2, dropout_hidden=0.2, seed=7)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Train and test logs: the first 150 and the last 50 sessions of one synthetic file."""
    path = write_synthetic_sessions(
        tmp_path_factory.mktemp("data") / "all.tsv", n_items=40, n_sessions=200, seed=1
    )
    header, *rows = path.read_bytes().splitlines(keepends=True)
    split = (
        [r for r in rows if int(r.split(b"\t")[0]) < 150],
        [r for r in rows if int(r.split(b"\t")[0]) >= 150],
    )
    return tuple(parse_events(header + b"".join(part)) for part in split)


@pytest.fixture(scope="module")
def clicks(synthetic):
    return synthetic[0]


def with_buys(log, every: int = 4):
    """The same sessions with every ``every``-th event a buy."""
    rows = []
    for s in range(log.n_sessions):
        for p in range(log.offsets[s], log.offsets[s + 1]):
            rows.append((f"s{s}", str(log.items[p]), float(p), "buy" if p % every == 0 else "click"))
    return parse_events(events_to_tsv(rows))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_training_is_deterministic_for_a_seed(clicks):
    first = train_model(clicks, TINY, progress=False)
    second = train_model(clicks, TINY, progress=False)
    assert_same_weights(weights(first.model), weights(second.model))
    assert first.epoch_losses == second.epoch_losses
    other = train_model(clicks, dataclasses.replace(TINY, seed=8), progress=False)
    assert not torch.equal(other.model.item_weight, first.model.item_weight)


def test_stopping_after_an_epoch_equals_a_shorter_run(clicks):
    after_first = {}

    def keep_weights(end: EpochEnd) -> None:
        after_first[end.epoch] = weights(end.model)

    train_model(clicks, TINY, progress=False, on_epoch_end=keep_weights)
    one_epoch = train_model(clicks, dataclasses.replace(TINY, epochs=1), progress=False)
    assert_same_weights(after_first[1], weights(one_epoch.model))


def test_a_callback_returning_true_stops_training_after_that_epoch(clicks):
    seen = []

    def stop_after_two(end: EpochEnd) -> bool:
        seen.append((end.epoch, end.epochs, end.loss, end.seconds > 0))
        return end.epoch == 2

    result = train_model(
        clicks, dataclasses.replace(TINY, epochs=5), progress=False, on_epoch_end=stop_after_two
    )
    assert [s[:2] for s in seen] == [(1, 5), (2, 5)] and all(s[3] for s in seen)
    assert len(result.epoch_losses) == 2 and seen[1][2] == result.epoch_losses[1]
    two = train_model(clicks, dataclasses.replace(TINY, epochs=2), progress=False)
    assert_same_weights(weights(result.model), weights(two.model))


def test_learning_rate_decay_changes_only_the_epochs_after_the_first(clicks):
    decayed = dataclasses.replace(TINY, lr_decay=0.5)
    first_plain = train_model(clicks, dataclasses.replace(TINY, epochs=1), progress=False)
    first_decayed = train_model(clicks, dataclasses.replace(decayed, epochs=1), progress=False)
    assert_same_weights(weights(first_plain.model), weights(first_decayed.model))
    plain, slower = train_model(clicks, TINY, progress=False), train_model(clicks, decayed, progress=False)
    assert not torch.equal(plain.model.item_weight, slower.model.item_weight)
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_click_only_data_leaves_event_vectors_at_zero(clicks):
    result = train_model(clicks, TINY, progress=False)
    assert not result.model.event_weight.any()
    assert result.model.training is False


def test_buys_train_their_vector_and_the_click_vector_stays_zero(clicks):
    result = train_model(with_buys(clicks), TINY, progress=False)
    buy, cart = result.model.event_weight  # rows after CLICK, whose vector is fixed at zero
    assert buy.abs().sum() > 0
    assert not cart.any()  # no cart events: untouched


def test_training_learns_the_synthetic_structure(synthetic):
    clicks, test = synthetic
    config = dataclasses.replace(TINY, epochs=3)
    result = train_model(clicks, config, progress=False)
    model_recall = evaluate_model(result.model, result.item_ids, test, [5])["recall@5"]
    popular_recall = evaluate_most_popular(clicks, test, [5])["recall@5"]
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert model_recall > popular_recall + 0.2


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "bpr-max", "bpreg": 1.0, "elu_param": 0.5, "logq": 0.0},
        {"n_sample": 0},
        {"embedding": 8, "n_layers": 2, "dropout_embed": 0.2},
    ],
)
def test_other_configurations_train(clicks, overrides):
    result = train_model(clicks, dataclasses.replace(TINY, **overrides), progress=False)
    assert all(np.isfinite(result.epoch_losses))
    assert result.epoch_losses[-1] < result.epoch_losses[0]


def test_warm_start_keeps_known_items_and_appends_new_ones(clicks):
    base = train_model(clicks, dataclasses.replace(TINY, epochs=1), progress=False)
    new_rows = [("n1", "brand-new", 1.0, "click"), ("n1", str(clicks.items[0]), 2.0, "click")]
    extra = parse_events(events_to_tsv(new_rows))
    warm = train_model(
        extra, dataclasses.replace(TINY, epochs=0), initial=(base.model, base.item_ids), progress=False
    )
    assert warm.item_ids == [*base.item_ids, "brand-new"]
    assert torch.equal(warm.model.item_weight[: len(base.item_ids)], base.model.item_weight)
    trained = train_model(extra, TINY, initial=(base.model, base.item_ids), progress=False)
    assert trained.model.n_items == len(base.item_ids) + 1
    with pytest.raises(ValueError, match="architecture"):
        train_model(
            extra, dataclasses.replace(TINY, hidden=8), initial=(base.model, base.item_ids), progress=False
        )


def test_presets_are_valid_configs():
    assert PRESETS["rsc15"] == TrainConfig()
    assert PRESETS["rsc15"].batch_size == 32 and PRESETS["rsc15"].logq == 1.0
    with pytest.raises(ValueError):
        TrainConfig(loss="hinge")


def test_data_without_any_pair_is_refused():
    log = parse_events(events_to_tsv([("a", "x", 1.0, "click"), ("b", "y", 2.0, "click")]))
    with pytest.raises(ValueError, match="nothing to train"):
        train_model(log, TINY, progress=False)


def test_weight_averaging_serves_the_mean_of_the_epochs_from_the_first_averaged_one(clicks):
    config = dataclasses.replace(TINY, epochs=3)
    ends = []
    plain = train_model(
        clicks, config, progress=False, on_epoch_end=lambda end: ends.append(weights(end.model)) and None
    )
    averaged = train_model(clicks, dataclasses.replace(config, average_from=2), progress=False)
    mean = {name: (ends[1][name] + ends[2][name]) / 2 for name in ends[0]}
    for name, value in weights(averaged.model).items():
        torch.testing.assert_close(value, mean[name])
    assert not torch.equal(averaged.model.item_weight, plain.model.item_weight)
    too_late = train_model(clicks, dataclasses.replace(config, average_from=5), progress=False)
    assert_same_weights(weights(too_late.model), weights(plain.model))
    with pytest.raises(ValueError, match="average_from"):
        TrainConfig(average_from=-1)
