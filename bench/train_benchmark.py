"""Training benchmark: accuracy and training speed on rsc15-100k, next to the reference GRU4Rec
(other data sets, e.g. ``--data-dir .../retailrocket --train train.tsv.gz --test test.tsv.gz``, are
measured without reference figures).

Trains once for the largest requested epoch count and evaluates on the test set after each
requested epoch; training is deterministic and has no schedule that depends on the total epoch
count, so the figure after epoch 1 is the one a separate 1-epoch run gives. Training seconds (wall
clock; CPU seconds of the process beside them show how much other load slowed it) exclude the
evaluations. Events/s is ``events in the training file x epochs / training seconds`` for both
columns, the way the data README derives the reference's speed.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from models.data import read_events
from models.evaluate import evaluate_last_item, evaluate_model, evaluate_most_popular
from models.presets import read_preset_file
from models.train import PRESETS, EpochEnd, TrainConfig, train_model

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATA = Path("/work/shared/data/rsc15-100k")
REFERENCE_DATA = "rsc15-100k"  # the reference figures below were measured on its train_full -> test
# Official GRU4Rec PyTorch code on this kind of 2-core machine (data README): epochs -> figures.
REFERENCE = {
    1: {"recall@20": 0.5655, "mrr@20": 0.2801, "train_seconds": 21.0},
    3: {"recall@20": 0.6584, "mrr@20": 0.3433, "train_seconds": None},  # "~60-90 s"
    10: {"recall@20": 0.6780, "mrr@20": 0.3582, "train_seconds": 120.0},
}
REFERENCE_TRAIN_EVENTS = 70_278
REFERENCE_BASELINES = {"most_popular": (0.0894, 0.0264), "last_item": (0.5907, 0.3430)}
TARGETS = {1: (0.55, 0.27), 10: (0.67, 0.35)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="default: %(default)s")
    parser.add_argument("--train", default="train_full.tsv", help="training file in --data-dir")
    parser.add_argument("--test", default="test.tsv", help="test file in --data-dir")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--preset", choices=sorted(PRESETS), default="rsc15")
    start.add_argument("--preset-file", type=Path, metavar="FILE", help="e.g. written by `streamrec tune`")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 10], help="evaluate after these epochs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument(
        "--json",
        type=Path,
        default=PROJECT_ROOT / "var" / "bench" / "train_benchmark.json",
        help="results file",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    checkpoints = sorted(set(args.epochs))
    preset = read_preset_file(args.preset_file) if args.preset_file else PRESETS[args.preset]
    config = TrainConfig(**{**preset.to_dict(), "epochs": checkpoints[-1], "seed": args.seed})
    with_reference = args.data_dir.name == REFERENCE_DATA and args.train == "train_full.tsv"
    train = read_events(args.data_dir / args.train)
    test = read_events(args.data_dir / args.test)
    print(f"train {args.train}: {train.n_events} events in {train.n_sessions} sessions; test {args.test}")
    print(f"preset {args.preset_file or args.preset}: {config}")

    results = []

    def checkpoint(end: EpochEnd) -> None:
        if end.epoch in checkpoints:
            started = time.perf_counter()
            metrics = evaluate_model(end.model, end.item_ids, test)
            print(f"evaluated after epoch {end.epoch} in {time.perf_counter() - started:.1f} s", flush=True)
            results.append({"epochs": end.epoch, **metrics})

    load_before = os.getloadavg()[0]
    outcome = train_model(
        train, config, progress=not args.quiet, on_epoch_end=checkpoint, threads=args.threads
    )
    load = (load_before, os.getloadavg()[0])  # other jobs' load slows training: report it beside the times
    for row in results:
        seconds = outcome.epoch_seconds[row["epochs"] - 1]
        row["train_seconds"] = seconds
        row["train_cpu_seconds"] = outcome.epoch_cpu_seconds[row["epochs"] - 1]
        row["events_per_second"] = train.n_events * row["epochs"] / seconds
    baselines = {
        "most_popular": evaluate_most_popular(train, test, [20]),
        "last_item": evaluate_last_item(train, test, [20]),
    }

    print()
    print(f"load average (1 min) {load[0]:.1f} before training, {load[1]:.1f} after")
    print(format_report(results, baselines, with_reference))
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "preset": str(args.preset_file or args.preset),
        "config": config.to_dict(),
        "data": {"train": str(args.data_dir / args.train), "test": str(args.data_dir / args.test)},
        "data_fingerprint": train.fingerprint,
        "machine": {
            "threads": args.threads,
            "torch": torch.__version__,
            "platform": platform.platform(),
            "load_average": {"before": load[0], "after": load[1]},
        },
        "results": results,
        "epoch_losses": outcome.epoch_losses,
        "baselines": baselines,
        "reference": {str(e): {**r, "events_per_second": _reference_speed(e)} for e, r in REFERENCE.items()}
        if with_reference
        else None,
        "targets_met": targets_met(results) if with_reference else None,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def _reference_speed(epochs: int) -> float | None:
    seconds = REFERENCE.get(epochs, {}).get("train_seconds")
    return REFERENCE_TRAIN_EVENTS * epochs / seconds if seconds else None


def format_report(results: list[dict], baselines: dict, with_reference: bool = True) -> str:
    header = (
        f"{'epochs':>6} | {'Recall@20':>9} {'MRR@20':>7} {'train s':>8} {'(cpu s)':>7} {'events/s':>9} |"
        f" {'ref R@20':>8} {'ref MRR':>7} {'ref s':>6} {'ref ev/s':>8} | target"
    )
    lines = [header, "-" * len(header)]
    for row in results:
        epochs = row["epochs"]
        ref = REFERENCE.get(epochs) if with_reference else None
        ref_cells = "" if ref is None else _reference_cells(epochs, ref)
        lines.append(
            f"{epochs:>6} | {row['recall@20']:9.4f} {row['mrr@20']:7.4f} {row['train_seconds']:8.1f}"
            f" {row['train_cpu_seconds']:7.1f} {row['events_per_second']:9,.0f} | {ref_cells:<32}"
            f" | {_target_cell(row) if with_reference else '-'}"
        )
    for name, metrics in baselines.items():
        line = f"{name:>12}: Recall@20 {metrics['recall@20']:.4f} MRR@20 {metrics['mrr@20']:.4f}"
        if with_reference:
            line += " (reference {:.4f} / {:.4f})".format(*REFERENCE_BASELINES[name])
        lines.append(line)
    return "\n".join(lines)


def _reference_cells(epochs: int, ref: dict) -> str:
    seconds = f"{ref['train_seconds']:6.0f}" if ref["train_seconds"] else " 60-90"
    speed = _reference_speed(epochs)
    return f"{ref['recall@20']:8.4f} {ref['mrr@20']:7.4f} {seconds} {speed or 0:8,.0f}"


def _target_cell(row: dict) -> str:
    target = TARGETS.get(row["epochs"])
    if target is None:
        return "-"
    return "met" if _meets(row) else f"MISSED (>= {target[0]} / {target[1]}, time <= reference)"


def _meets(row: dict) -> bool:
    recall, mrr = TARGETS[row["epochs"]]
    reference_seconds = REFERENCE[row["epochs"]]["train_seconds"]
    return row["recall@20"] >= recall and row["mrr@20"] >= mrr and row["train_seconds"] <= reference_seconds


def targets_met(results: list[dict]) -> dict[str, bool]:
    return {str(row["epochs"]): _meets(row) for row in results if row["epochs"] in TARGETS}


if __name__ == "__main__":
    sys.exit(main())
