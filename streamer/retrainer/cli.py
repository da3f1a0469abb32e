"""``streamrec retrainer``: the retraining worker's command line."""

import argparse
import asyncio
import sys

from models.presets import PresetError, read_preset_file
from models.train import TrainConfig
from streamer.common.kafka_probe import EXIT_CODES_HELP, require_kafka
from streamer.common.logs import configure_logging
from streamer.common.settings import ConfigError, Settings


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description="Keep a rolling window of recent click and buy events; periodically train a model "
        "warm-started from the serving one, compare both on the most recent held-out sessions, and "
        "promote the candidate (model store + model-updates topic) unless it is worse by more than the "
        "margin. With no model serving, the first is trained and promoted once the window holds "
        "STREAMREC_RETRAIN_FIRST_MODEL_EVENTS events. Configured by the STREAMREC_RETRAIN* and Kafka "
        "variables (see `streamrec worker --help`).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        preset = training_preset(settings)
    except ConfigError as exc:
        print(f"streamrec retrainer: configuration error: {exc}", file=sys.stderr)
        return 2
    require_kafka(settings, "streamrec retrainer")
    configure_logging(settings.log.format, settings.log.level)
    from streamer.retrainer.service import run as run_service

    asyncio.run(run_service(settings, preset))
    return 0


def training_preset(settings: Settings) -> TrainConfig | None:
    """The preset of STREAMREC_RETRAIN_PRESET_FILE, checked at start; None when it is not set."""
    path = settings.retrainer.preset_file
    if path is None:
        return None
    try:
        return read_preset_file(path)
    except (PresetError, OSError) as exc:
        raise ConfigError(f"STREAMREC_RETRAIN_PRESET_FILE: {exc}") from None
