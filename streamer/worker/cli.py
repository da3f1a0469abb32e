"""``streamrec worker``: run one streamer worker in the foreground (Faust's own worker command)."""

import argparse
import sys

from streamer.common.kafka_probe import EXIT_CODES_HELP
from streamer.common.settings import SETTINGS

FAUST_LOG_LEVELS = {"warning": "warn"}


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    settings_help = "\n".join(f"  {s.env:<34} {s.help} (default: {s.default})" for s in SETTINGS.values())
    parser = subparsers.add_parser(
        name,
        help=summary,
        description="Consume the click and buy topics, keep each user's GRU state in RocksDB, and "
        "publish a top-K list per event. Configured by environment variables; a bad value stops the "
        "worker at start with a message naming the variable.",
        epilog=f"environment:\n{settings_help}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--loglevel", "-l", default=None, help="log level (default: STREAMREC_LOG_LEVEL)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.worker.assembly import worker_from_env

    worker = worker_from_env()
    level = args.loglevel or worker.settings.log.level
    # Faust's worker command spells the levels its own way.
    sys.argv = ["streamrec worker", "worker", "--loglevel", FAUST_LOG_LEVELS.get(level, level)]
    worker.app.main()
    return 0
