"""``streamrec replay``: produce a dataset's events to the click and buy topics in time order.

Files are read as ``streamrec train`` reads them (:mod:`models.event_files`): session TSV files such
as those under ``shared/data/rsc15-100k``, gzip-compressed or not (``SessionId ItemId Time`` with an
optional ``EventType`` column; each session becomes one user, as in the offline evaluation), the
REES46 CSV (``view`` -> click, ``cart`` -> click topic as a cart event, ``purchase`` -> buy), and other
exports through ``--columns``. Messages are keyed by user id.

Replay never waits for Kafka without end: when Kafka acknowledges nothing for ``--timeout`` seconds
(e.g. the broker is down), it stops, says how many events were delivered and
exits with code 75; ``--skip N`` then continues after them.
"""

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.event_files import (
    DataError,
    InputFormat,
    add_input_format_arguments,
    input_format_from_args,
    read_event_table,
)
from schemas.events import Event, EventType
from streamer.common.kafka_config import kafka_python_config
from streamer.common.kafka_probe import EXIT_CODES_HELP, require_kafka
from streamer.common.settings import ConfigError, Settings

DEFAULT_TIMEOUT_S = 120.0
EXIT_INCOMPLETE = 75  # EX_TEMPFAIL: resume later with --skip


def read_events(path: Path, input_format: InputFormat | None = None) -> list[Event]:
    """A file's events in time order (ties in file order), read as ``streamrec train`` reads it: a
    session TSV (gzip or not; each session becomes one user, as in the offline evaluation), a REES46
    export, or another export through ``input_format``."""
    table = read_event_table(path, input_format)
    users = table.users or [f"session-{session}" for session in table.sessions]
    events = [
        Event(
            event_id=f"{path.stem}-{row + 2}",  # the file's line number: the header is line 1
            user_id=users[row],
            item_id=table.items[row],
            event_time=table.times[row],
            event_type=table.event_types[row],
            session_id=table.sessions[row] or None,
        )
        for row in range(len(table))
    ]
    return sorted(events, key=lambda e: e.event_time)


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


class ReplayIncomplete(Exception):
    """Kafka acknowledged only the first ``delivered`` of ``total`` events (see :func:`replay`)."""

    def __init__(self, delivered: int, total: int, reason: str) -> None:
        super().__init__(f"delivered {delivered} of {total} events before {reason}")
        self.delivered = delivered
        self.total = total
        self.reason = reason


def replay(
    events: list[Event],
    settings: Settings,
    rate: float = 0.0,
    progress: bool = True,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int:
    """Produce ``events`` in order to the settings' click and buy topics, wait until Kafka has
    acknowledged all of them, and return how many were delivered (all of them).

    If Kafka acknowledges nothing for ``timeout_s`` while sends are pending (e.g. the broker is down)
    or a send fails, stop sending and raise :class:`ReplayIncomplete` with ``delivered``, the number
    of leading events Kafka acknowledged; replaying ``events[delivered:]`` continues the replay.
    What is guaranteed: those first events are on their topics, each once (the idempotent producer's
    retries do not duplicate) and in order per partition (acks=all, one request in flight per broker).
    Not guaranteed: that no later event is there. A broker that wrote a request and died before
    acknowledging it (at most one request per broker, one batch per partition) keeps those events,
    and a resume sends them again; consumers that must not see them twice de-duplicate by event_id.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    timeout_ms = int(timeout_s * 1000)
    try:
        producer = KafkaProducer(
            acks="all",
            linger_ms=5,
            enable_idempotence=True,
            max_in_flight_requests_per_connection=1,
            delivery_timeout_ms=timeout_ms,
            request_timeout_ms=min(30_000, timeout_ms - 10),  # kafka-python: delivery > linger + request
            bootstrap_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,  # the longest send() waits for metadata or buffer space
            **kafka_python_config(settings),
        )
    except KafkaError as error:
        raise ReplayIncomplete(0, len(events), _describe(error)) from None
    deliveries = _Deliveries(len(events))
    reason = None
    try:
        for n, event in enumerate(tqdm(paced(events, rate), total=len(events), **_progress_bar(progress))):
            if deliveries.failures or deliveries.stalled(timeout_s):
                break
            future = producer.send(
                topic_for(event, settings.topics.click, settings.topics.buy),
                key=event.user_id.encode(),
                value=event.to_bytes(),
            )
            deliveries.track(future, n)
        # Not producer.flush(): it waits up to its timeout per batch, and without one it hung forever
        # after a 150 s broker outage; kafka-python 3.0 did not expire the batches of a killed broker
        # after delivery_timeout_ms either (measured: still pending 10 s past a 10 s timeout).
        if not deliveries.wait(timeout_s):
            reason = f"Kafka acknowledged nothing for {timeout_s:g} s"
    except KafkaError as error:  # send() found no metadata or buffer space within max_block_ms
        reason = _describe(error)
    finally:
        close_producer(producer, deliveries.completed == deliveries.sent, timeout_s)
    delivered = deliveries.prefix()
    if delivered == len(events):
        return delivered
    raise ReplayIncomplete(delivered, len(events), reason or _describe(deliveries.failures[0]))


class _Deliveries:
    """Which events Kafka acknowledged, and how many sends completed either way."""

    def __init__(self, total: int) -> None:
        self.acknowledged = bytearray(total)
        self.failures: list[BaseException] = []
        self.sent = 0
        self.completed = 0
        self.progressed_at = time.monotonic()
        self._completion = threading.Condition()

    def track(self, future: Any, n: int) -> None:
        with self._completion:
            if self.completed == self.sent:  # the first pending send: Kafka has to answer from now
                self.progressed_at = time.monotonic()
            self.sent += 1
        future.add_callback(self._acknowledge, n)
        future.add_errback(self._fail)

    def stalled(self, timeout_s: float) -> bool:
        """Whether sends are pending and none completed for ``timeout_s``."""
        with self._completion:
            return self.completed < self.sent and time.monotonic() - self.progressed_at > timeout_s

    def wait(self, timeout_s: float) -> bool:
        """Wait until every tracked send completed (-> True) or none completed for ``timeout_s``
        (-> False): a slow broker that keeps acknowledging is waited for, a dead one is not."""
        with self._completion:
            while self.completed < self.sent:
                left = self.progressed_at + timeout_s - time.monotonic()
                if left <= 0:
                    return False
                self._completion.wait(left)
            return True

    def prefix(self) -> int:
        """How many leading events Kafka acknowledged."""
        first_missing = self.acknowledged.find(0)
        return len(self.acknowledged) if first_missing == -1 else first_missing

    def _acknowledge(self, n: int, _metadata: object) -> None:
        self.acknowledged[n] = 1
        self._complete()

    def _fail(self, error: BaseException) -> None:
        self.failures.append(error)
        self._complete()

    def _complete(self) -> None:
        with self._completion:
            self.completed += 1
            self.progressed_at = time.monotonic()
            self._completion.notify_all()


def close_producer(producer: Any, all_completed: bool, timeout_s: float) -> None:
    """Close ``producer``; with sends still pending, abandon them at once. kafka-python's close()
    would raise KafkaTimeoutError from its flush, and again from ``__del__`` (a traceback on stderr):
    its public API cannot drop pending sends, its sender's ``force_close`` can (it fails them)."""
    if not all_completed:
        producer._sender.force_close()
        producer._sender.join(timeout_s)
    producer.close(timeout=timeout_s)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _progress_bar(progress: bool) -> dict[str, object]:
    """tqdm options: with ``disable=None`` tqdm draws only on a terminal, so logs get no bar lines."""
    return {"disable": None if progress else True, "unit": "ev", "mininterval": 1.0}


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=__doc__,
        epilog=f"{EXIT_CODES_HELP}\nand while replaying:\n  {EXIT_INCOMPLETE}  Kafka acknowledged nothing "
        "for --timeout seconds; the last line says how many events were delivered (resume with --skip)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data", type=Path, help="a session .tsv or .tsv.gz file, a REES46 .csv, or another export"
    )
    add_input_format_arguments(parser)
    parser.add_argument("--bootstrap-servers", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--click-topic", default=None, help="default: $STREAMREC_CLICK_TOPIC or click")
    parser.add_argument("--buy-topic", default=None, help="default: $STREAMREC_BUY_TOPIC or buy")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0 = as fast as possible")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    parser.add_argument(
        "--skip",
        type=_count,
        default=0,
        metavar="N",
        help="leave out the first N events (of --limit), e.g. those a failed replay delivered",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="give up when Kafka acknowledges nothing for S seconds (default: %(default)g)",
    )
    parser.set_defaults(func=run)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


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
    try:
        events = read_events(args.data, input_format_from_args(args))[: args.limit]
    except (DataError, OSError, ValueError) as error:
        print(f"streamrec replay: {error}", file=sys.stderr)
        return 2
    require_kafka(settings, "streamrec replay")
    try:
        sent = replay(events[args.skip :], settings, args.rate, timeout_s=args.timeout)
    except ReplayIncomplete as incomplete:
        delivered = args.skip + incomplete.delivered
        print(
            f"streamrec replay: delivered {delivered} of {len(events)} events before {incomplete.reason}; "
            f"resume with --skip {delivered}",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    print(f"replayed {sent} events from {args.data} to {settings.kafka.bootstrap_servers}")
    return 0
