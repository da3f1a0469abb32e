"""``streamrec tune``: search hyperparameters for a shop's data and write a preset file."""

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

from models.data import read_events
from models.event_files import DataError, add_input_format_arguments, input_format_from_args
from models.presets import PresetError, read_preset_file, write_preset_file
from models.train import PRESETS, TrainConfig
from models.tune import METRICS, TuneOptions, tune

DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)?")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """``90`` or ``90s``, ``10m``, ``1.5h`` -> seconds."""
    match = DURATION.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive duration such as 600, 90s, 10m or 2h, not {text!r}"
        )
    return float(match[1]) * UNIT_SECONDS[match[2] or "s"]


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=__doc__ + "\n\n" + _TUNING_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="training events (never the test file)")
    add_input_format_arguments(parser)
    parser.add_argument("--budget", type=parse_duration, default=600.0, help="time to spend (default: 10m)")
    parser.add_argument(
        "--trials",
        type=int,
        default=100,
        help="most finished trials in the study, earlier runs' included (default: %(default)s)",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=METRICS[0],
        help="validation metric to maximise (default: %(default)s)",
    )
    parser.add_argument(
        "--valid-share",
        type=float,
        default=0.1,
        help="share of the last sessions validated on (default: %(default)s)",
    )
    parser.add_argument(
        "--max-epochs", type=int, default=10, help="epochs per trial at most (default: %(default)s)"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop a trial after this many epochs without gain (default: %(default)s)",
    )
    parser.add_argument(
        "--start-from",
        nargs="+",
        default=sorted(PRESETS),
        metavar="PRESET|FILE",
        help="what a new study tries first: built-in presets or preset files (default: %(default)s)",
    )
    parser.add_argument(
        "--study", type=Path, help="SQLite file of the study (default: var/tune/NAME.sqlite3)"
    )
    parser.add_argument("--out", type=Path, help="preset file to write (default: var/tune/NAME.preset.json)")
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the sampler and of every trial's training (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.set_defaults(func=run)


_TUNING_TEXT = """\
Trains on the earlier sessions of --data and measures Recall@20 and MRR@20 on the last --valid-share
of them after each epoch; a trial stops early when the metric has not improved for --patience epochs
or Optuna prunes it. Runs until --budget is spent (a running trial finishes its epoch) or the study
has --trials finished trials. Re-running with the same data and options resumes the study. Writes the
best parameters, with the epoch count at which they peaked, as a preset file for
`streamrec train --preset-file`."""


def run(args: argparse.Namespace) -> int:
    name = _default_name(args.data)
    study_path = args.study or Path("var/tune") / f"{name}.sqlite3"
    out = args.out or Path("var/tune") / f"{name}.preset.json"
    try:
        start_from = [_start_config(text) for text in args.start_from]
        options = TuneOptions(
            metric=args.metric,
            valid_share=args.valid_share,
            max_epochs=args.max_epochs,
            patience=args.patience,
            budget_s=args.budget,
            trials=args.trials,
            seed=args.seed,
            threads=args.threads,
        )
        train = read_events(args.data, input_format_from_args(args))
        result = tune(train, options, study_path, start_from, report=_report)
    except (DataError, PresetError, OSError, ValueError, RuntimeError) as e:
        print(f"streamrec tune: {e}", file=sys.stderr)
        return 2
    about = {
        "tuned_on": str(args.data),
        "data_fingerprint": train.fingerprint,
        "study": str(study_path),
        "best_trial": result.best_trial,
        "trials_in_study": result.trials_in_study,
        "options": dataclasses.asdict(options),
        "validation": result.validation,
    }
    write_preset_file(out, result.config, about)
    print(f"best: trial {result.best_trial} of {result.trials_in_study}, {options.metric} {result.value:.4f}")
    print(json.dumps({"config": result.config.to_dict(), "validation": result.validation}, indent=1))
    print(f"wrote {out}; train with: streamrec train --data {args.data} --preset-file {out} --out DIR")
    return 0


def _report(line: str) -> None:
    print(line, flush=True)


def _start_config(text: str) -> TrainConfig:
    return PRESETS[text] if text in PRESETS else read_preset_file(Path(text))


def _default_name(data: Path) -> str:
    """``../shared/data/retailrocket/train.tsv.gz`` -> ``retailrocket-train``."""
    stem = data.name.split(".")[0]
    return f"{data.resolve().parent.name}-{stem}" if data.resolve().parent.name else stem
