"""``streamrec catalog``: publish item availability on the compacted item-catalog topic, which every
worker follows; an unavailable item is never listed.

  streamrec catalog set ITEM [ITEM ...] --unavailable [--attr KEY=VALUE ...]
  streamrec catalog set ITEM [ITEM ...] --available
  streamrec catalog delete ITEM [ITEM ...]    (the catalog forgets them: available again)
  streamrec catalog load FILE                 (CSV, TSV or JSON lines; see `load --help`)

The topic is created (compacted) if it is missing. Records are sent in the order given, and the
command returns once Kafka has acknowledged all of them.
"""

import argparse
import sys
from pathlib import Path

from schemas.catalog import AttributeValue, CatalogEntry, catalog_record
from schemas.errors import InvalidMessage
from streamer.common.admin import ensure_catalog_topic
from streamer.common.kafka_config import kafka_python_config
from streamer.common.kafka_probe import EXIT_CODES_HELP, EXIT_TIMEOUT, require_kafka
from streamer.common.settings import ConfigError, Settings
from streamer.tools import catalog_files
from streamer.tools.catalog_files import CatalogFileError, CatalogRecord, attribute_value
from streamer.tools.replay import close_producer

PROG = "streamrec catalog"
ACKNOWLEDGED_WITHIN_S = 60.0
EXIT_USAGE = 2
EPILOG = f"""{EXIT_CODES_HELP}
and otherwise:
  {EXIT_USAGE}  a bad argument, setting or file (nothing is published)
  {EXIT_TIMEOUT}  Kafka did not acknowledge every record within {ACKNOWLEDGED_WITHIN_S:g} s"""


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--topic", default=None, help="default: $STREAMREC_CATALOG_TOPIC or item-catalog")
    connection.add_argument("--bootstrap-servers", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            help=summary,
            description=description,
            parents=[connection],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    set_parser = action(
        "set",
        "mark items available or unavailable",
        "Publish the items' availability (and attributes); each record replaces the item's previous one.",
    )
    set_parser.add_argument("items", nargs="+", metavar="ITEM", help="item ids, as in the events")
    availability = set_parser.add_mutually_exclusive_group(required=True)
    availability.add_argument("--available", dest="available", action="store_true", help="may be listed")
    availability.add_argument("--unavailable", dest="available", action="store_false", help="never listed")
    set_parser.add_argument(
        "--attr",
        dest="attributes",
        action="append",
        type=_attribute,
        default=[],
        metavar="KEY=VALUE",
        help="an attribute of every item given (repeatable); a JSON number, true or false is sent as that, "
        "anything else as text",
    )
    set_parser.set_defaults(func=_run, records=_set_records)

    delete_parser = action(
        "delete",
        "forget items (tombstones): they are available again",
        "Publish a tombstone per item: the catalog forgets it, and an item it does not know is available.",
    )
    delete_parser.add_argument("items", nargs="+", metavar="ITEM", help="item ids, as in the events")
    delete_parser.set_defaults(func=_run, records=_delete_records)

    load_parser = action("load", "publish a CSV, TSV or JSON-lines file of items", catalog_files.__doc__)
    load_parser.add_argument("file", type=Path, help="the catalog file")
    load_parser.set_defaults(func=_run, records=_file_records)


def publish(settings: Settings, records: list[CatalogRecord]) -> None:
    """Create the catalog topic if it is missing and send ``records`` in order; return once Kafka
    has acknowledged every one (raises kafka-python's ``KafkaError`` otherwise)."""
    from kafka import KafkaProducer

    ensure_catalog_topic(settings)
    # One request in flight and idempotence: a retried send cannot overtake a later record of the same
    # item, which would leave the earlier availability as the item's last word.
    producer = KafkaProducer(
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
        **kafka_python_config(settings),
    )
    acknowledged = False
    try:
        futures = [producer.send(settings.topics.catalog, key=key, value=value) for key, value in records]
        producer.flush(ACKNOWLEDGED_WITHIN_S)
        for future in futures:
            future.get(timeout=0)
        acknowledged = True
    finally:
        close_producer(producer, acknowledged, ACKNOWLEDGED_WITHIN_S)


def _attribute(text: str) -> tuple[str, AttributeValue]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, attribute_value(value)


def _set_records(args: argparse.Namespace) -> list[CatalogRecord]:
    entry = CatalogEntry(args.available, dict(args.attributes) or None)
    return [catalog_record(item, entry) for item in args.items]


def _delete_records(args: argparse.Namespace) -> list[CatalogRecord]:
    return [catalog_record(item, None) for item in args.items]


def _file_records(args: argparse.Namespace) -> list[CatalogRecord]:
    return catalog_files.read_catalog_file(args.file)


def _run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    command = f"{PROG} {args.action}"
    try:
        settings = Settings.from_env(
            KAFKA_BOOTSTRAP_SERVERS=args.bootstrap_servers, STREAMREC_CATALOG_TOPIC=args.topic
        )
        records = args.records(args)
    except ConfigError as exc:
        return _fail(f"{command}: configuration error: {exc}")
    except InvalidMessage as exc:
        return _fail(f"{command}: {exc.detail}")
    except CatalogFileError as exc:
        return _fail(f"{command}: {exc}")
    require_kafka(settings, command)
    try:
        publish(settings, records)
    except KafkaError as exc:
        print(f"{command}: Kafka did not take the records: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    print(f"published {len(records)} catalog records to {settings.topics.catalog}")
    return 0


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_USAGE
