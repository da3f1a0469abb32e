"""``streamrec kafka``: start, stop or inspect a local single-node Kafka broker."""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streamer.tools.kafka_local.broker import (
    BrokerInfo,
    LocalBroker,
    NoBrokerState,
    find_running,
    stop_running,
)
from streamer.tools.kafka_local.jars import KAFKA_VERSION, KafkaSetupError, ensure_kafka_jars, print_progress

DEFAULT_STATE_DIR = Path("var/kafka")
EXIT_SETUP_ERROR = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130

DESCRIPTION = f"""\
Run a real Apache Kafka {KAFKA_VERSION} broker on 127.0.0.1 without Docker: one KRaft node started
with java from jars that Maven fetches once from Maven Central (needs Java 17+ and Maven).

  eval "$(streamrec kafka start)"     # starts it in the background, sets KAFKA_BOOTSTRAP_SERVERS
  streamrec kafka status              # exit code 0 if running, 3 if not
  streamrec kafka stop                # stops it and deletes its data
  streamrec kafka stop --keep-data    # stops it, keeping its data for `restart`
  eval "$(streamrec kafka restart)"   # brings back a stopped, killed or running broker with its
                                      # data, ports and cluster id
"""


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    """Add the ``kafka`` command and its actions to the top-level ``streamrec`` parser."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    start = actions.add_parser(
        "start",
        help="start a broker in the background and print `export KAFKA_BOOTSTRAP_SERVERS=...`",
        description="Start a broker that keeps running after this command returns. Progress goes to "
        "stderr; the last line on stdout is `export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT`, so "
        '`eval "$(streamrec kafka start)"` sets it in the shell. If a broker is already running in '
        "the state directory, it is reused.",
    )
    _add_state_dir(start)
    start.add_argument(
        "--partitions",
        type=_positive_int,
        default=1,
        metavar="N",
        help="partitions of auto-created topics (num.partitions; default: %(default)s)",
    )
    start.set_defaults(func=_handle_errors(_start))

    stop = actions.add_parser(
        "stop",
        help="stop the broker and delete its data (unless --keep-data)",
        description="Stop the broker and delete its data, or keep it for `streamrec kafka restart`.",
    )
    _add_state_dir(stop)
    stop.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the data, ports and cluster id so that `streamrec kafka restart` brings the broker back",
    )
    stop.set_defaults(func=_handle_errors(_stop))

    restart = actions.add_parser(
        "restart",
        help="bring back a stopped (--keep-data), killed or running broker with its data and ports",
        description="Start the broker of the state directory again with the same data, ports and "
        "cluster id: after `stop --keep-data`, after its process was killed (even with SIGKILL), or "
        "while it runs (it is stopped first). Like `start`, the last line on stdout is `export "
        f"KAFKA_BOOTSTRAP_SERVERS=...`. Exit code {EXIT_NOT_RUNNING} if there is no broker state to "
        "restart from.",
    )
    _add_state_dir(restart)
    restart.set_defaults(func=_handle_errors(_restart))

    status = actions.add_parser(
        "status",
        help="say whether a broker is running (exit code 0) or not (exit code 3)",
        description="Print whether a broker is running, with its bootstrap address and pid. "
        f"Exit code 0 if it is running, {EXIT_NOT_RUNNING} if not.",
    )
    _add_state_dir(status)
    status.set_defaults(func=_handle_errors(_status))

    fetch = actions.add_parser(
        "fetch",
        help="fetch the Kafka jars into the cache (e.g. to warm a CI cache) and print the folder",
        description="Make sure the broker's jars are in the cache folder ($STREAMREC_KAFKA_JARS_DIR or "
        f"~/.cache/streamrec/kafka-{KAFKA_VERSION}/jars), fetching them with Maven if needed, and print it.",
    )
    fetch.set_defaults(func=_handle_errors(_fetch))


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help="where the broker keeps its config, data, logs and pid file (default: ./%(default)s)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _handle_errors(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn setup problems and Ctrl-C into a message on stderr and an exit code instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except KafkaSetupError as error:
            print(f"streamrec kafka: {error}", file=sys.stderr)
            return EXIT_SETUP_ERROR
        except KeyboardInterrupt:
            print("streamrec kafka: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


def _start(args: argparse.Namespace) -> int:
    running = find_running(args.state_dir.resolve())
    if running is not None:
        print_progress(f"a Kafka broker is already running in {running.state_dir} (pid {running.pid})")
    else:
        running = _start_detached(args.state_dir, args.partitions)
    print(f"export KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}")
    return 0


def _start_detached(state_dir: Path, partitions: int) -> BrokerInfo:
    print_progress(f"starting Kafka {KAFKA_VERSION} in {state_dir}…")
    began = time.monotonic()
    broker = LocalBroker(state_dir, num_partitions=partitions).start()
    info = broker.info
    elapsed = time.monotonic() - began
    print_progress(
        f"Kafka is ready at {info.bootstrap_servers} (pid {info.pid}) after {elapsed:.1f} s; "
        "stop it with `streamrec kafka stop`"
    )
    return info


def _stop(args: argparse.Namespace) -> int:
    stopped = stop_running(args.state_dir, keep_data=args.keep_data)
    data = "kept its data for `streamrec kafka restart`" if args.keep_data else "deleted its data"
    if stopped is None:
        print(f"no Kafka broker was running in {args.state_dir}" + (f"; {data}" if args.keep_data else ""))
    else:
        print(f"stopped the Kafka broker at {stopped.bootstrap_servers} (pid {stopped.pid}), {data}")
    return 0


def _restart(args: argparse.Namespace) -> int:
    print_progress(f"restarting Kafka {KAFKA_VERSION} in {args.state_dir}…")
    began = time.monotonic()
    try:
        info = LocalBroker(args.state_dir).restart().info
    except NoBrokerState as error:
        print(f"streamrec kafka: {error}; start one with `streamrec kafka start`", file=sys.stderr)
        return EXIT_NOT_RUNNING
    print_progress(
        f"Kafka is ready at {info.bootstrap_servers} (pid {info.pid}) after {time.monotonic() - began:.1f} s"
    )
    print(f"export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    return 0


def _status(args: argparse.Namespace) -> int:
    running = find_running(args.state_dir.resolve())
    if running is None:
        print(f"not running (state dir {args.state_dir})")
        return EXIT_NOT_RUNNING
    print(f"running: {running.bootstrap_servers} (pid {running.pid}, state dir {running.state_dir})")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    print(ensure_kafka_jars())
    return 0
