"""``streamrec train`` and ``streamrec evaluate`` (registered by :mod:`streamer.cli`)."""

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from models.ann import AnnParams, AnnScorer
from models.artifact import ArtifactError, load_artifact, save_artifact
from models.data import EventLog, group_sessions, read_events
from models.evaluate import DEFAULT_CUTOFFS, evaluate_last_item, evaluate_model, evaluate_most_popular
from models.event_files import (
    DataError,
    add_input_format_arguments,
    input_format_from_args,
    read_event_table,
)
from models.popularity import recent_popularity
from models.presets import PresetError, read_preset_file
from models.train import LOSSES, PRESETS, EpochEnd, TrainConfig, TrainingError, TrainResult, train_model

# Command-line flag -> TrainConfig field; flags left out keep the preset's value.
HYPERPARAMETER_FLAGS: dict[str, tuple[str, type, str]] = {
    "--epochs": ("epochs", int, "training epochs"),
    "--hidden": ("hidden", int, "GRU units per layer"),
    "--layers": ("n_layers", int, "GRU layers"),
    "--embedding": ("embedding", int, "separate input embedding size; 0 shares the output item matrix"),
    "--batch-size": ("batch_size", int, "sessions per mini-batch"),
    "--dropout-embed": ("dropout_embed", float, "dropout on the input embedding"),
    "--dropout-hidden": ("dropout_hidden", float, "dropout on each GRU layer's output"),
    "--lr": ("learning_rate", float, "Adagrad learning rate"),
    "--lr-decay": ("lr_decay", float, "the learning rate is multiplied by this after each epoch"),
    "--average-from": (
        "average_from",
        int,
        "serve the mean of the weights at the ends of this epoch to the last (0: the last epoch's)",
    ),
    "--momentum": ("momentum", float, "momentum"),
    "--n-sample": ("n_sample", int, "shared negative samples per mini-batch"),
    "--sample-alpha": ("sample_alpha", float, "negatives are drawn proportionally to popularity ** alpha"),
    "--logq": ("logq", float, "logQ correction strength (cross-entropy)"),
    "--bpreg": ("bpreg", float, "score regularisation (bpr-max)"),
    "--elu-param": ("elu_param", float, "ELU applied to scores, 0 for none (bpr-max)"),
    "--seed": ("seed", int, "random seed; the same seed gives the same weights"),
    "--seen-bonus": ("seen_bonus", float, "added to the scores of the items the session has had"),
    "--seen-decay": ("seen_decay", float, "the seen bonus is multiplied by this per event since the item"),
}


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(name, help=summary, description=summary)
    if name == "train":
        _add_train_arguments(parser)
        parser.set_defaults(func=run_train)
    elif name == "evaluate":
        _add_evaluate_arguments(parser)
        parser.set_defaults(func=run_evaluate)
    else:
        raise ValueError(f"models.cli has no command {name!r}")


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="training events (SessionId ItemId Time TSV, .gz or not)"
    )
    add_input_format_arguments(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="artifact directory to write (replaced if present)"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--preset", choices=sorted(PRESETS), default="rsc15", help="hyperparameters to start from"
    )
    start.add_argument(
        "--preset-file",
        type=Path,
        metavar="FILE",
        help="hyperparameters to start from, e.g. `streamrec tune`'s",
    )
    parser.add_argument("--loss", choices=LOSSES, help="training loss")
    for flag, (field, kind, help_text) in HYPERPARAMETER_FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, help=help_text)
    parser.add_argument(
        "--eval",
        type=Path,
        metavar="PATH",
        help="test events to evaluate on after each epoch; stored as metrics",
    )
    parser.add_argument("--init", type=Path, metavar="DIR", help="warm-start from this artifact")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: %(default)s, the fastest)"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (there is none anyway when output is not a terminal)",
    )


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="artifact directory")
    parser.add_argument(
        "--data", type=Path, required=True, help="test events (SessionId ItemId Time TSV, .gz or not)"
    )
    add_input_format_arguments(parser)
    parser.add_argument("--train", type=Path, help="training events: also evaluate the two baselines")
    parser.add_argument("--cutoffs", type=int, nargs="+", default=list(DEFAULT_CUTOFFS), help="K values")
    parser.add_argument(
        "--scorer",
        choices=["exact", "ann"],
        default="exact",
        help="exact: rank each target against every item; ann: within the approximate scorer's lists "
        "of the largest K, also reporting their overlap with the exact lists (default: %(default)s)",
    )
    parser.add_argument(
        "--ann-candidates", type=int, default=AnnParams.candidates, help="ann: items re-ranked exactly"
    )
    parser.add_argument("--ann-nprobe", type=int, default=AnnParams.nprobe, help="ann: index lists searched")
    parser.add_argument(
        "--seen-bonus",
        type=float,
        help="rank with this seen bonus instead of the model's (what the model would score with it)",
    )
    parser.add_argument(
        "--seen-decay", type=float, help="rank with this decay of the seen bonus instead of the model's"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the metrics as JSON")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {field: getattr(args, field) for field, _, _ in HYPERPARAMETER_FLAGS.values()}
    if args.loss is not None:
        overrides["loss"] = args.loss
    preset = read_preset_file(args.preset_file) if args.preset_file else PRESETS[args.preset]
    return TrainConfig(**{**preset.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def run_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        input_format = input_format_from_args(args)
        table = read_event_table(args.data, input_format)
        log = group_sessions(table)
        popular_items = recent_popularity(table.items, table.times, table.event_types)
        del table  # the grouped log holds what training needs
        test = read_events(args.eval, input_format) if args.eval else None
        initial = None
        if args.init:
            base = load_artifact(args.init)
            initial = (base.model, base.item_ids)
        test_metrics: dict = {}
        result = train_model(
            log,
            config,
            initial=initial,
            progress=not args.quiet,
            on_epoch_end=_epoch_reporter(test, test_metrics),
            threads=args.threads,
        )
    except (ArtifactError, DataError, PresetError, OSError, ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = {**_training_metrics(result), **test_metrics}
    preset = str(args.preset_file) if args.preset_file else args.preset
    run_config = {"preset": preset, **config.to_dict()}
    version = save_artifact(
        args.out, result.model, result.item_ids, run_config, log.fingerprint, metrics, popular_items
    )
    print(
        f"wrote {args.out} (version {version}, {len(result.item_ids)} items, "
        f"{len(popular_items)} popular items)"
    )
    print(json.dumps(metrics, indent=1))
    return 0


def _epoch_reporter(test: EventLog | None, latest: dict) -> Callable[[EpochEnd], None]:
    """Prints one line per epoch (time, loss, speed; with test events their metrics, kept in ``latest``)."""

    def report(end: EpochEnd) -> None:
        line = (
            f"epoch {end.epoch}/{end.epochs}: loss {end.loss:.4f}, {end.seconds:.1f} s training so far,"
            f" {end.events_per_second:,.0f} events/s"
        )
        if test is not None:
            started = time.perf_counter()
            latest.clear()
            latest.update(evaluate_model(end.model, end.item_ids, test))
            line += (
                f"; test recall@20 {latest['recall@20']:.4f}, mrr@20 {latest['mrr@20']:.4f}"
                f" (evaluated in {time.perf_counter() - started:.1f} s)"
            )
        print(line, flush=True)

    return report


def _training_metrics(result: TrainResult) -> dict:
    if not result.epoch_seconds:
        return {}
    seconds = result.epoch_seconds[-1]
    return {
        "train_loss": result.epoch_losses[-1],
        "train_seconds": round(seconds, 3),
        "train_events_per_second": round(result.events_per_epoch * len(result.epoch_seconds) / seconds),
    }


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        artifact = load_artifact(args.model)
        chosen = {"seen_bonus": args.seen_bonus, "seen_decay": args.seen_decay}
        if chosen := {name: value for name, value in chosen.items() if value is not None}:
            model = artifact.model
            model.config = dataclasses.replace(model.config, **chosen)
        input_format = input_format_from_args(args)
        test = read_events(args.data, input_format)
        train = read_events(args.train, input_format) if args.train else None
    except (ArtifactError, DataError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scorer = None
    if args.scorer == "ann":
        params = AnnParams(candidates=args.ann_candidates, nprobe=args.ann_nprobe)
        scorer = AnnScorer.build(artifact.model.item_table(), params)
        print(
            f"built the approximate index of {artifact.model.n_items} items in {scorer.build_seconds:.1f} s"
        )
    started = time.perf_counter()
    metrics = evaluate_model(artifact.model, artifact.item_ids, test, args.cutoffs, scorer=scorer)
    print(f"evaluated {metrics['n_predictions']} predictions in {time.perf_counter() - started:.1f} s")
    if scorer is not None:
        overlap = next(key for key in metrics if key.startswith("overlap@"))
        print(f"{overlap} of the approximate lists with the exact ones: {metrics[overlap]:.4f}")
    baselines = {}
    if train is not None:
        baselines["most_popular"] = evaluate_most_popular(train, test, args.cutoffs)
        baselines["last_item"] = evaluate_last_item(train, test, args.cutoffs)
    print(format_table({f"model {artifact.version}": metrics, **baselines}, args.cutoffs))
    if args.json:
        report = {"model_version": artifact.version, **metrics}
        if baselines:
            report["baselines"] = baselines
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def format_table(results: dict[str, dict], cutoffs: list[int]) -> str:
    cutoffs = sorted(set(cutoffs))
    columns = [f"{m}@{k}" for k in cutoffs for m in ("recall", "mrr")]
    width = max(len(name) for name in results)
    lines = [f"{'':{width}}  " + "  ".join(f"{c:>9}" for c in columns) + "  predictions"]
    for name, metrics in results.items():
        values = "  ".join(f"{metrics[c]:9.4f}" for c in columns)
        lines.append(f"{name:{width}}  {values}  {metrics['n_predictions']:>11}")
    return "\n".join(lines)
