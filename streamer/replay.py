"""``streamrec replay``: produce a dataset's events to the click and buy topics in time order.

Two formats are read: the session TSV files under ``shared/data/rsc15-100k`` (``SessionId ItemId
Time`` with an optional ``EventType`` column; each session becomes one user, as in the offline
evaluation) and the REES46 CSV (``view`` -> click, ``cart`` -> click topic as a cart event,
``purchase`` -> buy). Messages are keyed by user id.
"""

import argparse
import csv
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from schemas.events import Event, EventType
from streamer.cli import command_summary
from streamer.kafka_config import kafka_python_config
from streamer.kafka_probe import EXIT_CODES_HELP, require_kafka
from streamer.settings import ConfigError, Settings

REES46_TYPES = {"view": EventType.CLICK, "cart": EventType.CART, "purchase": EventType.BUY}


def read_session_tsv(path: Path) -> list[Event]:
    """Events of a SessionId/ItemId/Time[/EventType] file; user id and session id = the session."""
    events = []
    with open(path, newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        for line, row in enumerate(rows, start=2):
            session = row["SessionId"]
            events.append(
                Event(
                    event_id=f"{path.stem}-{line}",
                    user_id=f"session-{session}",
                    item_id=row["ItemId"],
                    event_time=float(row["Time"]),
                    event_type=EventType[row.get("EventType", "click").upper()],
                    session_id=session,
                )
            )
    return sorted(events, key=lambda e: e.event_time)


def read_rees46_csv(path: Path) -> list[Event]:
    events = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            parsed = datetime.strptime(row["event_time"], "%Y-%m-%d %H:%M:%S %Z")
            stamp = parsed.replace(tzinfo=UTC).timestamp()
            events.append(
                Event(
                    event_id=f"{path.stem}-{line}",
                    user_id=row["user_id"],
                    item_id=row["product_id"],
                    event_time=stamp,
                    event_type=REES46_TYPES[row["event_type"]],
                    session_id=row["user_session"] or None,
                )
            )
    return sorted(events, key=lambda e: e.event_time)


def read_events(path: Path) -> list[Event]:
    return read_rees46_csv(path) if path.suffix == ".csv" else read_session_tsv(path)


def topic_for(event: Event, click_topic: str, buy_topic: str) -> str:
    return buy_topic if event.event_type == EventType.BUY else click_topic


def paced(events: list[Event], rate: float) -> Iterator[Event]:
    """Yield events no faster than ``rate`` per second (0: as fast as possible)."""
    start = time.monotonic()
    for n, event in enumerate(events):
        if rate > 0:
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield event


def replay(events: list[Event], settings: Settings, rate: float = 0.0, progress: bool = True) -> int:
    """Produce ``events`` in order to the settings' click and buy topics, wait until Kafka has all
    of them, and return how many were sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", linger_ms=5, **kafka_python_config(settings))
    try:
        for event in tqdm(paced(events, rate), total=len(events), disable=not progress, unit="ev"):
            producer.send(
                topic_for(event, settings.click_topic, settings.buy_topic),
                key=event.user_id.encode(),
                value=event.to_bytes(),
            )
        producer.flush()
    finally:
        producer.close()
    return len(events)


def register(subparsers: argparse._SubParsersAction, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=command_summary(name),
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=Path, help="a session .tsv file or a REES46 .csv file")
    parser.add_argument("--bootstrap-servers", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--click-topic", default=None, help="default: $STREAMREC_CLICK_TOPIC or click")
    parser.add_argument("--buy-topic", default=None, help="default: $STREAMREC_BUY_TOPIC or buy")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0 = as fast as possible")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(
            KAFKA_BOOTSTRAP_SERVERS=args.bootstrap_servers,
            STREAMREC_CLICK_TOPIC=args.click_topic,
            STREAMREC_BUY_TOPIC=args.buy_topic,
        )
    except ConfigError as exc:
        print(f"streamrec replay: configuration error: {exc}", file=sys.stderr)
        return 2
    require_kafka(settings, "streamrec replay")
    events = read_events(args.data)[: args.limit]
    sent = replay(events, settings, args.rate)
    print(f"replayed {sent} events from {args.data} to {settings.kafka_bootstrap_servers}")
    return 0
