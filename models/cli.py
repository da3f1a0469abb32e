"""``streamrec train`` and ``streamrec evaluate`` (registered by :mod:`streamer.cli`)."""

import argparse
import json
import sys
from pathlib import Path

from models.artifact import ArtifactError, load_artifact, save_artifact
from models.data import DataError, read_events
from models.evaluate import DEFAULT_CUTOFFS, evaluate_last_item, evaluate_model, evaluate_most_popular
from models.train import LOSSES, PRESETS, TrainConfig, TrainingError, TrainResult, train_model

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
    "--momentum": ("momentum", float, "momentum"),
    "--n-sample": ("n_sample", int, "shared negative samples per mini-batch"),
    "--sample-alpha": ("sample_alpha", float, "negatives are drawn proportionally to popularity ** alpha"),
    "--logq": ("logq", float, "logQ correction strength (cross-entropy)"),
    "--bpreg": ("bpreg", float, "score regularisation (bpr-max)"),
    "--elu-param": ("elu_param", float, "ELU applied to scores, 0 for none (bpr-max)"),
    "--seed": ("seed", int, "random seed; the same seed gives the same weights"),
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
        "--data", type=Path, required=True, help="training events (SessionId ItemId Time TSV)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="artifact directory to write (replaced if present)"
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="rsc15", help="hyperparameters to start from"
    )
    parser.add_argument("--loss", choices=LOSSES, help="training loss")
    for flag, (field, kind, help_text) in HYPERPARAMETER_FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, help=help_text)
    parser.add_argument(
        "--eval", type=Path, metavar="PATH", help="test events to evaluate on; stored as metrics"
    )
    parser.add_argument("--init", type=Path, metavar="DIR", help="warm-start from this artifact")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: %(default)s, the fastest)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="artifact directory")
    parser.add_argument("--data", type=Path, required=True, help="test events (SessionId ItemId Time TSV)")
    parser.add_argument("--train", type=Path, help="training events: also evaluate the two baselines")
    parser.add_argument("--cutoffs", type=int, nargs="+", default=list(DEFAULT_CUTOFFS), help="K values")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the metrics as JSON")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {field: getattr(args, field) for field, _, _ in HYPERPARAMETER_FLAGS.values()}
    if args.loss is not None:
        overrides["loss"] = args.loss
    preset = PRESETS[args.preset]
    return TrainConfig(**{**preset.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def run_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        log = read_events(args.data)
        test = read_events(args.eval) if args.eval else None
        initial = None
        if args.init:
            base = load_artifact(args.init)
            initial = (base.model, base.item_ids)
        result = train_model(log, config, initial=initial, progress=not args.quiet, threads=args.threads)
    except (ArtifactError, DataError, OSError, ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = _training_metrics(result)
    if test is not None:
        metrics.update(evaluate_model(result.model, result.item_ids, test))
    run_config = {"preset": args.preset, **config.to_dict()}
    version = save_artifact(args.out, result.model, result.item_ids, run_config, log.fingerprint, metrics)
    print(f"wrote {args.out} (version {version}, {len(result.item_ids)} items)")
    print(json.dumps(metrics, indent=1))
    return 0


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
        test = read_events(args.data)
        train = read_events(args.train) if args.train else None
    except (ArtifactError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = evaluate_model(artifact.model, artifact.item_ids, test, args.cutoffs)
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
