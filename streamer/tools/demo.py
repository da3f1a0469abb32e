"""``streamrec demo``: the whole pipeline on one machine, from nothing to printed recommendations.

Steps: start a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names one), train a model on the
rsc15 sample if none exists yet, start a streamer worker and a retrainer, replay test-split events
into the click topic, and print each recommendation list as it arrives. Half-way through, the
retrainer trains on the events it has seen, promotes the result, and the worker swaps it in while
events keep flowing: the lists after that carry the new version. At the end it asks the worker's
query API for one user's list, marks that list's first item sold out on the item-catalog topic, and
asks again: the item is gone. Everything it started is stopped at the end or on Ctrl-C.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from schemas.recommendations import Recommendation
from streamer.common.settings import Settings
from streamer.tools.worker_process import WorkerProcess

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "rsc15-100k"
PARTITIONS = 4


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(name, help=summary, description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with train_full.tsv and test.tsv (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=PROJECT_ROOT / "var" / "models" / "demo",
        help="model artifact; trained here first if missing (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs when training the demo model")
    parser.add_argument("--events", type=int, default=1500, help="test events to replay")
    parser.add_argument("--rate", type=float, default=150.0, help="events per second (0: unpaced)")
    parser.add_argument(
        "--margin",
        type=float,
        default=1.0,
        help="retrainer promotion margin (default 1.0: promote whatever it trains, to show the swap)",
    )
    parser.add_argument("--show", type=int, default=5, help="items of each list to print")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for needed in (args.data / "train_full.tsv", args.data / "test.tsv"):
        if not needed.is_file():
            print(f"streamrec demo: {needed} not found; pass --data DIR", file=sys.stderr)
            return 2
    if not (args.model / "manifest.json").is_file():
        train_demo_model(args.data / "train_full.tsv", args.model, args.epochs)
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(kafka_for_demo())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="streamrec-demo-")))
        return run_pipeline(args, bootstrap, workdir, stack)


def train_demo_model(train_file: Path, out: Path, epochs: int) -> None:
    print(f"training a demo model on {train_file} ({epochs} epoch(s)) -> {out}", flush=True)
    command = [
        sys.executable,
        "-m",
        "streamer.cli",
        "train",
        "--data",
        str(train_file),
        "--preset",
        "rsc15",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True)


@contextlib.contextmanager
def kafka_for_demo() -> Iterator[str]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        print(f"using the Kafka cluster at {given}")
        yield given
        return
    from streamer.tools.kafka_local.broker import LocalBroker

    print("starting a local Kafka broker…", flush=True)
    with LocalBroker() as broker:
        print(f"Kafka is up at {broker.bootstrap_servers}", flush=True)
        yield broker.bootstrap_servers


def run_pipeline(args: argparse.Namespace, bootstrap: str, workdir: Path, stack: contextlib.ExitStack) -> int:
    from streamer.common.admin import ensure_topics
    from streamer.tools.kafka_local.broker import free_ports
    from streamer.tools.replay import read_events, replay

    app_id = f"streamrec-demo-{os.getpid()}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMREC_APP_ID": app_id,
        "STREAMREC_CLICK_TOPIC": f"{app_id}-click",
        "STREAMREC_BUY_TOPIC": f"{app_id}-buy",
        "STREAMREC_RECOMMENDATIONS_TOPIC": f"{app_id}-recommendations",
        "STREAMREC_DEAD_LETTER_TOPIC": f"{app_id}-dead-letters",
        "STREAMREC_CATALOG_TOPIC": f"{app_id}-item-catalog",
        "STREAMREC_TOPIC_PARTITIONS": str(PARTITIONS),
        "STREAMREC_MODEL_PATH": str(args.model),
        "STREAMREC_DATA_DIR": str(workdir / "state"),
        "STREAMREC_WEB_PORT": str(free_ports(1)[0]),
    }
    retrainer_env = {
        "STREAMREC_MODEL_STORE": str(workdir / "model-store"),
        "STREAMREC_MODEL_UPDATES_TOPIC": f"{app_id}-model-updates",
        "STREAMREC_RETRAINER_DIR": str(workdir / "retrainer"),
        "STREAMREC_RETRAINER_METRICS_PORT": str(free_ports(1)[0]),
        "STREAMREC_RETRAIN_EVERY_EVENTS": str(max(100, args.events // 2)),
        "STREAMREC_RETRAIN_EVERY_S": "0",
        "STREAMREC_RETRAIN_EPOCHS": "1",
        "STREAMREC_RETRAIN_HOLDOUT": "0.2",
        "STREAMREC_RETRAIN_MARGIN": str(args.margin),
    }
    env |= retrainer_env
    settings = Settings.from_env({**os.environ, **env})
    ensure_topics(settings)
    worker = WorkerProcess(env, workdir / "worker.log").start()
    stack.callback(worker.stop)
    retrainer = WorkerProcess(env, workdir / "retrainer.log", command="retrainer").start()
    stack.callback(retrainer.stop)
    print(
        f"streamer worker (pid {worker.pid}) and retrainer (pid {retrainer.pid}) started; logs in {workdir}"
    )
    worker.wait_ready()

    events = read_events(args.data / "test.tsv")[: args.events]
    producer = threading.Thread(target=replay, args=(events, settings, args.rate, False), daemon=True)
    producer.start()
    received, last_user = print_recommendations(settings, len(events), args.show, worker)
    producer.join()
    print(f"\n{received} lists for {len(events)} replayed events")
    for line in retrainer.log_path.read_text().splitlines():
        if "retrain decision" in line:
            print("retrainer:", line.split("retrain decision ", 1)[1][:300])
    if last_user is not None and worker.alive():
        show_api_and_catalog(settings, last_user, args.show)
    if not worker.alive():
        print(f"the worker exited early; its log ends:\n{worker.log_tail()}", file=sys.stderr)
        return 1
    return 0 if received == len(events) else 1


def show_api_and_catalog(settings: Settings, user: str, show: int, within_s: float = 30.0) -> None:
    """One query API call, one item sold out on the catalog topic, and the same call once the worker
    has followed the change."""
    from schemas.catalog import CatalogEntry, catalog_record
    from streamer.tools.catalog_cli import publish

    quoted = urllib.request.quote(user, safe="")
    url = f"http://127.0.0.1:{settings.worker.web_port}/users/{quoted}/recommendations?k={show}"
    print(f"\n$ curl '{url}'")
    answer = _get_json(url)
    print(json.dumps(answer))
    if not answer["items"]:
        return
    sold_out = answer["items"][0]["item_id"]
    print(f"\n$ streamrec catalog set {sold_out} --unavailable   # sold out")
    publish(settings, [catalog_record(sold_out, CatalogEntry(available=False))])
    deadline = time.monotonic() + within_s
    while sold_out in {item["item_id"] for item in answer["items"]} and time.monotonic() < deadline:
        time.sleep(0.2)  # poll interval: the worker follows the catalog topic within a moment
        answer = _get_json(url)
    print(f"$ curl '{url}'")
    print(json.dumps(answer))
    gone = sold_out not in {item["item_id"] for item in answer["items"]}
    print(f"item {sold_out} {'is no longer listed' if gone else f'is still listed after {within_s:.0f} s'}")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def print_recommendations(
    settings: Settings, expected: int, show: int, worker: WorkerProcess, idle_timeout_s: float = 120.0
) -> tuple[int, str | None]:
    from kafka import KafkaConsumer

    from streamer.common.kafka_config import kafka_python_config

    consumer = KafkaConsumer(
        settings.topics.recommendations,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        **kafka_python_config(settings),
    )
    received, user = 0, None
    versions: list[str] = []
    last_seen = time.monotonic()
    try:
        while received < expected and worker.alive() and time.monotonic() - last_seen < idle_timeout_s:
            for message in consumer:
                rec = Recommendation.from_bytes(message.value)
                received, user = received + 1, rec.user_id
                if rec.model_version not in versions:
                    if versions:
                        print(
                            f"\n=== model swapped while events flow: {versions[-1]} -> {rec.model_version}\n"
                        )
                    versions.append(rec.model_version)
                last_seen = time.monotonic()
                top = ", ".join(item.item_id for item in rec.items[:show])
                print(
                    f"{received:5d} {rec.user_id:<15} after {rec.event_id:<15} -> {top} [{rec.model_version}]"
                )
                if received >= expected:
                    break
    finally:
        consumer.close()
    return received, user
