"""The ``streamrec`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module, which exposes ``register(subparsers, name, summary)``: it
adds the subcommand's parser and sets ``func`` to a callable taking the parsed args and returning the exit
code. Only the module of the subcommand being run is imported, so ``streamrec kafka status`` does
not pay for importing torch and faust.
"""

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streamer.tools.demo", "run the whole pipeline on a local broker with bundled sample data"),
    "worker": ("streamer.worker.cli", "run a streamer worker (the same as `faust -A streamer.app worker`)"),
    "retrainer": (
        "streamer.retrainer.cli",
        "retrain on recent events and announce better models to the streamers",
    ),
    "kafka": ("streamer.tools.kafka_local.cli", "start, stop or inspect a local single-node Kafka broker"),
    "train": ("models.cli", "train a GRU4Rec model on a session TSV file and write an artifact"),
    "evaluate": ("models.cli", "evaluate a model artifact: Recall@K and MRR@K on a session TSV file"),
    "tune": (
        "models.tune_cli",
        "search training hyperparameters on a validation split and write a preset",
    ),
    "replay": (
        "streamer.tools.replay",
        "produce a dataset's events to the click and buy topics in time order",
    ),
    "score-stream": (
        "streamer.tools.score_stream",
        "score the recommendations topic against the replayed events",
    ),
    "catalog": (
        "streamer.tools.catalog_cli",
        "publish item availability (sold out, back in stock) on the item-catalog topic",
    ),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrec",
        description="Real-time session recommendations from Kafka click and buy events.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, summary) in COMMANDS.items():
        if name == wanted:
            importlib.import_module(module_name).register(subparsers, name, summary)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
