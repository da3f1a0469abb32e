"""Measure what the streamer's user state costs, to size deployments (deploy/README.md quotes it).

1. Bytes per user state (``UserState.to_bytes()``) for a hidden size, a layer count and a few
   recent-item counts, with real item ids.
2. RocksDB disk and memory per million users: replays real sessions (one state write per event, as
   the worker does) for ``--users`` users into one RocksDB opened with Faust's own options (the
   ``rocksdict`` driver of the streamer's table), then extrapolates linearly.
3. With ``--worker-model``: the resident memory of a real worker process, idle and after one event
   from each of ``--worker-users`` users (against $KAFKA_BOOTSTRAP_SERVERS, or a local broker).

Run: ``.venv/bin/python bench/state_size.py [--users 200000] [--worker-model var/models/current]``
"""

import argparse
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from faust.stores.rocksdb import RocksDBOptions
from kafka import KafkaConsumer, KafkaProducer
from rocksdict import Rdict

from models.data import read_events
from schemas.events import Event
from streamer.common.admin import ensure_topics
from streamer.common.kafka_config import kafka_python_config
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import LocalBroker, free_ports
from streamer.tools.worker_process import WorkerProcess
from streamer.worker.state import UserState

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rsc15-100k" / "train_full.tsv"
MODEL_VERSION = "20261122T073800Z-3f2a1c9e"  # the format of every version string
MB = 1024**2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="sessions TSV (SessionId ItemId Time)"
    )
    parser.add_argument("--hidden", type=int, default=100, help="GRU hidden units (default: 100)")
    parser.add_argument("--layers", type=int, default=1, help="GRU layers (default: 1)")
    parser.add_argument(
        "--recent", type=int, nargs="+", default=[1, 4, 20, 200], help="recent-item counts for the table"
    )
    parser.add_argument("--users", type=int, default=200_000, help="users written to RocksDB")
    parser.add_argument("--worker-model", type=Path, help="artifact: also measure a real worker's RSS")
    parser.add_argument("--worker-users", type=int, default=50_000, help="users sent to the worker")
    return parser.parse_args()


def make_state(hidden: int, layers: int, items: list[str], offset: int) -> UserState:
    return UserState(
        hidden=np.random.default_rng(offset).standard_normal((layers, hidden), dtype=np.float32),
        model_version=MODEL_VERSION,
        recent_items=items,
        recent_types=[0] * len(items),
        last_event_time=1_700_000_000.123 + offset,
        session_id=f"s-{offset}",
        applied={"click": 10_000_000 + offset, "buy": 1_000_000 + offset},
        events_seen=len(items),
    )


def sessions(data: Path) -> list[list[str]]:
    log = read_events(data)
    return [list(log.items[a:b]) for a, b in zip(log.offsets[:-1], log.offsets[1:], strict=True)]


def state_bytes_table(args: argparse.Namespace, items: list[str]) -> None:
    print(f"bytes per user state (hidden {args.hidden}, {args.layers} layer(s)):")
    for count in args.recent:
        state = make_state(args.hidden, args.layers, [items[i % len(items)] for i in range(count)], 1)
        print(f"  {count:>4} recent items: {len(state.to_bytes()):>6} bytes")


def user_writes(all_sessions: list[list[str]], users: int, hidden: int, layers: int) -> Iterator[tuple]:
    """Each user replays one real session: one state write per event, as the worker applies them."""
    rng = random.Random(7)
    for user in range(users):
        session = rng.choice(all_sessions)
        key = f"user-{user:08d}".encode()
        for n in range(1, len(session) + 1):
            yield key, make_state(hidden, layers, session[:n], user * 100 + n).to_bytes()


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sst_bytes(db: Rdict) -> int:
    return db.property_int_value("rocksdb.live-sst-files-size")


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rocksdb_figures(args: argparse.Namespace, all_sessions: list[list[str]], folder: Path) -> None:
    rss_before = rss_bytes()
    db = RocksDBOptions(use_rocksdict=True).open(folder / "user-state-0.db")
    started = time.monotonic()
    writes = 0
    for key, value in user_writes(all_sessions, args.users, args.hidden, args.layers):
        db[key] = value
        writes += 1
    elapsed = time.monotonic() - started
    rss_written = rss_bytes()
    db.flush()
    flushed = sst_bytes(db)
    keys = [f"user-{u:08d}".encode() for u in range(args.users)]
    random.Random(1).shuffle(keys)
    for key in keys:
        db.get(key)  # a worker's per-event lookup, through the block cache
    rss_read = rss_bytes()
    db.compact_range(None, None)
    compacted = sst_bytes(db)
    db.close()
    on_disk = disk_bytes(folder)

    def line(label: str, size: float, per_million: bool = True) -> None:
        scaled = f" -> {size * 1_000_000 / args.users / MB:8.1f} MB per million users" if per_million else ""
        print(f"  {label:<36} {size / MB:8.1f} MB{scaled}")

    print(f"RocksDB, {args.users} users ({writes} state writes in {elapsed:.1f} s), Faust's options:")
    line("SST files after flush", flushed)
    line("SST files after full compaction", compacted)
    line("disk after close (SST, logs, manifest)", on_disk)
    line("memory after writes (memtables)", rss_written - rss_before, per_million=False)
    line("memory after reading every user", rss_read - rss_before)


def worker_figures(args: argparse.Namespace, folder: Path) -> None:
    with ExitStack() as stack:
        bootstrap = (
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(LocalBroker()).bootstrap_servers
        )
        app_id = f"bench-state-{secrets.token_hex(4)}"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMREC_APP_ID": app_id,
            **{f"STREAMREC_{t.upper()}_TOPIC": f"{app_id}-{t}" for t in ("click", "buy", "recommendations")},
            "STREAMREC_DEAD_LETTER_TOPIC": f"{app_id}-dead-letters",
            "STREAMREC_MODEL_UPDATES_TOPIC": f"{app_id}-model-updates",
            "STREAMREC_MODEL_PATH": str(args.worker_model.resolve()),
            "STREAMREC_DATA_DIR": str(folder / "worker"),
            "STREAMREC_WEB_PORT": str(free_ports(1)[0]),
        }
        settings = Settings.from_env(env)
        ensure_topics(settings)
        worker = WorkerProcess(env, folder / "worker.log").start()
        stack.callback(worker.stop)
        worker.wait_ready(timeout_s=180)
        idle = rss_bytes(worker.pid)

        producer = KafkaProducer(linger_ms=20, **kafka_python_config(settings))
        items = [line.split("\t")[1] for line in args.data.read_text().splitlines()[1:1000]]
        for user in range(args.worker_users):
            event = Event(f"e-{user}", f"user-{user:08d}", items[user % len(items)], 1_700_000_000.0 + user)
            producer.send(settings.topics.click, key=event.user_id.encode(), value=event.to_bytes())
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            settings.topics.recommendations,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            **kafka_python_config(settings),
        )
        lists = 0
        deadline = time.monotonic() + 600
        while lists < args.worker_users and time.monotonic() < deadline and worker.alive():
            lists += sum(1 for _ in consumer)
        consumer.close()
        loaded = rss_bytes(worker.pid)
    print(f"worker RSS (model {args.worker_model}):")
    print(f"  idle, model loaded, tables recovered: {idle / MB:8.1f} MB")
    print(f"  after {lists} users' first event:     {loaded / MB:8.1f} MB")


def main() -> None:
    args = parse_args()
    all_sessions = sessions(args.data)
    state_bytes_table(args, [item for session in all_sessions for item in session])
    mean = sum(map(len, all_sessions)) / len(all_sessions)
    print(f"  (sessions in {args.data.name}: mean {mean:.1f} events)")
    folder = Path(tempfile.mkdtemp(prefix="streamrec-state-size-"))
    try:
        rocksdb_figures(args, all_sessions, folder)
        if args.worker_model:
            worker_figures(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
