"""``streamrec tune`` on a tiny data set: progress lines, a preset that ``train`` accepts, resuming."""

import argparse
import json

import optuna
import pytest
import torch

from models.artifact import load_artifact
from models.data import build_vocabulary, events_to_tsv, parse_events
from models.evaluate import SEEN_BONUS_GRID, SEEN_DECAY_GRID
from models.model import GRU4Rec, ModelConfig
from models.presets import read_preset_file
from models.synthetic import write_synthetic_sessions
from models.train import PRESETS, EpochEnd
from models.tune import TuneOptions, best_seen_bonus, open_study, searched_params, suggest_config
from models.tune_cli import parse_duration
from streamer.cli import main

TINY_RUN = ["--max-epochs", "2", "--patience", "1", "--threads", "1"]


@pytest.fixture
def data(tmp_path):
    return write_synthetic_sessions(tmp_path / "train.tsv", n_items=30, n_sessions=120, seed=4)


def tune(tmp_path, data, *extra):
    study, out = tmp_path / "study.sqlite3", tmp_path / "shop.preset.json"
    argv = ["tune", "--data", str(data), "--study", str(study), "--out", str(out), *TINY_RUN, *extra]
    return main(argv), out


def test_tune_reports_progress_and_writes_a_preset_that_train_accepts(tmp_path, data, capsys):
    code, preset = tune(tmp_path, data, "--budget", "60s", "--trials", "2", "--start-from", "rsc15")
    assert code == 0
    output = capsys.readouterr().out
    assert "0 finished trial(s) so far" in output and "validating on the last 12 " in output
    assert "trial 0 epoch 1: loss" in output and "trial 1 epoch 1: loss" in output
    assert "best so far" in output and "min left" in output
    about = json.loads(preset.read_text())["about"]
    config = read_preset_file(preset)
    assert 1 <= config.epochs <= 2 and about["trials_in_study"] == 2
    assert set(about["validation"]) == {"recall@20", "mrr@20", "n_predictions"}
    model = tmp_path / "model"
    assert (
        main(["train", "--data", str(data), "--preset-file", str(preset), "--quiet", "--out", str(model)])
        == 0
    )
    assert load_artifact(model).config["hidden"] == config.hidden
    assert "with seen bonus" in output and config.seen_bonus in SEEN_BONUS_GRID
    table = load_artifact(model).model.item_table()
    assert (table.seen_bonus, table.seen_decay) == (config.seen_bonus, config.seen_decay)
    assert config.seen_decay in SEEN_DECAY_GRID


def test_the_first_trials_of_a_new_study_are_the_start_preset_averaged_then_as_is_and_a_rerun_resumes(
    tmp_path, data, capsys
):
    assert tune(tmp_path, data, "--budget", "60s", "--trials", "1", "--start-from", "rsc15")[0] == 0
    first = capsys.readouterr().out
    assert "trial 0: loss=cross-entropy, hidden=100, batch_size=32" in first and "average_from=2" in first
    assert tune(tmp_path, data, "--budget", "60s", "--trials", "2")[0] == 0
    second = capsys.readouterr().out
    assert "1 finished trial(s) so far" in second and "trial 0: " not in second
    assert "trial 1: loss=cross-entropy, hidden=100, batch_size=32" in second and "average_from=0" in second


def test_every_builtin_preset_lies_in_the_search_space():
    for preset in PRESETS.values():
        params = searched_params(preset)
        config = suggest_config(optuna.trial.FixedTrial(params), max_epochs=preset.epochs, seed=preset.seed)
        assert config == preset


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1.5h", 5400)])
def test_budgets_are_read_in_seconds_minutes_or_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "ten minutes", "-5m", "5d"])
def test_a_budget_that_is_not_a_positive_duration_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_a_trial_cut_by_the_budget_still_gives_a_preset_and_the_next_run_trains_it_in_full(
    tmp_path, data, capsys
):
    code, preset = tune(tmp_path, data, "--budget", "0.01s", "--trials", "1", "--start-from", "rsc15")
    assert code == 0
    first = capsys.readouterr().out
    assert "trial 0 cut by the budget" in first and "0 finished trial(s)" in first
    assert read_preset_file(preset).epochs == 1
    assert tune(tmp_path, data, "--budget", "60s", "--trials", "1")[0] == 0
    second = capsys.readouterr().out
    assert "trial 1: loss=cross-entropy, hidden=100, batch_size=32" in second
    assert "trial 1 complete" in second


def test_a_resumed_study_draws_new_parameters_rather_than_the_previous_runs_again(tmp_path, data, capsys):
    assert tune(tmp_path, data, "--budget", "60s", "--trials", "2", "--start-from", "rsc15")[0] == 0
    first = capsys.readouterr().out
    assert tune(tmp_path, data, "--budget", "60s", "--trials", "3")[0] == 0
    second = capsys.readouterr().out
    drawn_first = next(line for line in first.splitlines() if line.startswith("trial 1: "))
    drawn_second = next(line for line in second.splitlines() if line.startswith("trial 2: "))
    assert drawn_first.removeprefix("trial 1: ") != drawn_second.removeprefix("trial 2: ")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # trials asked for by hand, not by optimize
def test_after_one_complete_trial_a_trial_below_it_at_an_epoch_is_pruned(tmp_path):
    log = parse_events(events_to_tsv([("s1", "a", 1.0, "click"), ("s1", "b", 2.0, "click")]))
    study = open_study(log, TuneOptions(), tmp_path / "study.sqlite3")
    study.add_trial(
        optuna.trial.create_trial(
            params={}, distributions={}, value=0.9, intermediate_values={1: 0.8, 2: 0.9}
        )
    )
    for value, pruned in ((0.5, True), (0.85, False)):
        trial = study.ask()
        trial.report(value, 1)
        assert bool(trial.should_prune()) is pruned


def sessions_of(pattern: list[str], n: int):
    rows = [
        (f"s{s}", f"{item}{s % 7}", float(t), "click") for s in range(n) for t, item in enumerate(pattern)
    ]
    return parse_events(events_to_tsv(rows))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [(["a", "b", "a", "b", "a", "b"], lambda bonus: bonus > 0), (list("abcdef"), lambda bonus: bonus <= 0)],
    ids=["sessions-that-return-to-their-items", "sessions-that-never-do"],
)
def test_the_fitted_seen_bonus_rewards_repeats_only_where_sessions_repeat(pattern, expected):
    log = sessions_of(pattern, 40)
    item_ids = build_vocabulary(log)
    model = GRU4Rec(ModelConfig(n_items=len(item_ids), hidden=8), torch.Generator().manual_seed(0)).eval()
    end = EpochEnd(
        epoch=1, epochs=1, model=model, item_ids=item_ids, loss=0.0, seconds=0.0, events_per_epoch=0
    )
    (bonus, decay), metrics = best_seen_bonus(end, log, "recall@20+mrr@20")
    assert expected(bonus)
    assert (
        bonus in SEEN_BONUS_GRID
        and decay in SEEN_DECAY_GRID
        and set(metrics) == {"recall@20", "mrr@20", "n_predictions"}
    )
