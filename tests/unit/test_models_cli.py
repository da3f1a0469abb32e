"""``streamrec train`` and ``streamrec evaluate`` through the project's entry point: settings, preset
files, output."""

import json
import re

import pytest

from models.artifact import load_artifact
from models.event_files import read_event_table
from models.popularity import recent_popularity
from models.presets import write_preset_file
from models.synthetic import write_synthetic_sessions
from models.train import TrainConfig
from streamer.cli import main

SMALL = ["--hidden", "8", "--batch-size", "8", "--n-sample", "16", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    train = write_synthetic_sessions(folder / "train.tsv", n_items=30, n_sessions=80, seed=3)
    test = write_synthetic_sessions(folder / "test.tsv", n_items=30, n_sessions=20, seed=3)
    return train, test


def test_train_writes_an_artifact_with_the_chosen_settings(tmp_path, data, capsys):
    train, test = data
    out = tmp_path / "model"
    argv = ["train", "--data", str(train), "--epochs", "1", "--seed", "3", "--lr", "0.1", "--eval", str(test)]
    assert main([*argv, *SMALL, "--out", str(out)]) == 0
    artifact = load_artifact(out)
    assert artifact.config["preset"] == "rsc15" and artifact.config["learning_rate"] == 0.1
    assert artifact.config["hidden"] == 8 and artifact.model.state_shape == (1, 8)
    assert artifact.config["seed"] == 3 and artifact.config["epochs"] == 1
    assert 0 <= artifact.metrics["recall@20"] <= 1 and artifact.metrics["train_seconds"] > 0
    assert artifact.version in capsys.readouterr().out


def test_train_stores_the_recent_popularity_of_its_training_events(tmp_path, data):
    train, _ = data
    out = tmp_path / "model"
    assert main(["train", "--data", str(train), "--epochs", "1", *SMALL, "--out", str(out)]) == 0
    table = read_event_table(train)
    expected = recent_popularity(table.items, table.times, table.event_types)
    assert load_artifact(out).popular_items == expected and len(expected) == 30


def test_evaluate_prints_a_table_and_writes_json(tmp_path, data, capsys):
    train, test = data
    out = tmp_path / "model"
    assert main(["train", "--data", str(train), "--epochs", "1", *SMALL, "--out", str(out)]) == 0
    report = tmp_path / "metrics.json"
    argv = [
        "evaluate",
        "--model",
        str(out),
        "--data",
        str(test),
        "--train",
        str(train),
        "--cutoffs",
        "5",
        "20",
    ]
    assert main([*argv, "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "most_popular" in table and "last_item" in table and "recall@20" in table
    metrics = json.loads(report.read_text())
    assert {"recall@5", "mrr@5", "recall@20", "mrr@20", "n_predictions"} <= metrics.keys()
    assert metrics["model_version"] == load_artifact(out).version
    assert set(metrics["baselines"]) == {"most_popular", "last_item"}


def test_errors_are_reported_with_exit_code_2(tmp_path, data, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "m")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(data[1])]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_train_prints_a_line_per_epoch_with_test_metrics_and_evaluate_its_duration(tmp_path, data, capsys):
    train, test = data
    out = tmp_path / "model"
    assert (
        main(["train", "--data", str(train), "--epochs", "2", "--eval", str(test), *SMALL, "--out", str(out)])
        == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss" in line and "events/s" in line and "test recall@20" in line for line in lines)
    assert main(["evaluate", "--model", str(out), "--data", str(test)]) == 0
    assert re.search(r"evaluated \d+ predictions in \d+\.\d s", capsys.readouterr().out)


def test_train_takes_its_settings_from_a_preset_file_and_flags_override_them(tmp_path, data):
    preset = tmp_path / "shop.preset.json"
    tuned = TrainConfig(
        loss="bpr-max", hidden=12, batch_size=8, n_sample=16, epochs=1, bpreg=0.5, lr_decay=0.8
    )
    write_preset_file(preset, tuned, {"tuned_on": "test"})
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(data[0]),
                "--preset-file",
                str(preset),
                "--seed",
                "5",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    config = load_artifact(out).config
    assert config["preset"] == str(preset) and config["seed"] == 5
    assert {k: config[k] for k in ("loss", "hidden", "bpreg", "lr_decay")} == {
        "loss": "bpr-max",
        "hidden": 12,
        "bpreg": 0.5,
        "lr_decay": 0.8,
    }


def test_a_bad_preset_file_is_reported_with_its_name(tmp_path, data, capsys):
    preset = tmp_path / "bad.json"
    preset.write_text(json.dumps({"format": "streamrec-preset/1", "config": {"hiden": 10}}))
    assert (
        main(["train", "--data", str(data[0]), "--preset-file", str(preset), "--out", str(tmp_path / "m")])
        == 2
    )
    assert f"{preset}: \"config\" has unknown fields ['hiden']" in capsys.readouterr().err


def test_a_seen_bonus_given_to_train_is_served_by_the_model_and_evaluate_can_try_another(
    tmp_path, data, capsys
):
    train, test = data
    out = tmp_path / "model"
    argv = ["train", "--data", str(train), "--epochs", "1", "--seen-bonus", "0.75", "--seen-decay", "0.9"]
    assert main([*argv, *SMALL, "--out", str(out)]) == 0
    artifact = load_artifact(out)
    assert artifact.model.item_table().seen_bonus == 0.75 and artifact.config["seen_bonus"] == 0.75
    assert artifact.model.item_table().seen_decay == 0.9
    reports = {}
    for bonus in ("0.75", "0", "40", "40/0.5"):
        reports[bonus] = tmp_path / f"bonus-{bonus.replace('/', '-')}.json"
        strength, _, decay = bonus.partition("/")
        command = ["evaluate", "--model", str(out), "--data", str(test), "--seen-bonus", strength]
        command += ["--seen-decay", decay or "0.9"]
        assert main([*command, "--json", str(reports[bonus])]) == 0
    assert (
        main(["evaluate", "--model", str(out), "--data", str(test), "--json", str(tmp_path / "own.json")])
        == 0
    )
    own = json.loads((tmp_path / "own.json").read_text())
    tried = {bonus: json.loads(path.read_text()) for bonus, path in reports.items()}
    assert own == tried["0.75"] and tried["0"] != tried["40"] != tried["40/0.5"]
    assert main(["evaluate", "--model", str(out), "--data", str(test), "--seen-bonus", "nan"]) == 2
    assert "seen_bonus must be a finite number" in capsys.readouterr().err
