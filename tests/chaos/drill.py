"""The chaos drill: a real broker, two workers, mixed producers and malformed input, while workers
are SIGKILLed, the broker is killed -9 and restarted, and the group scales 2 -> 1 -> 2; then an
audit of every input record (see :mod:`tests.chaos.audit`).

    .venv/bin/python -m tests.chaos.drill                 # `make chaos`: about 10 minutes
    .venv/bin/python -m tests.chaos.drill --duration 60   # the short variant CI runs

Prints the counts and exits 1 if any record is missing or differs, or any state differs.
"""

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.artifact import load_artifact
from models.synthetic import write_synthetic_sessions
from streamer.common.admin import create_missing_topics
from streamer.common.settings import Settings
from streamer.tools.kafka_local import LocalBroker
from streamer.tools.kafka_local.broker import free_ports
from streamer.tools.worker_process import WorkerProcess
from streamer.worker.records import InputRecord
from tests.chaos.audit import AuditReport, audit
from tests.chaos.workload import Workload
from tests.support.training import train_with_cli

STATE_PARTITIONS = 3
CLICK_PARTITIONS = 5  # input topics need not match the state's partition count
SESSION_TIMEOUT_S = 8  # a SIGKILLed worker's partitions move after this long


@dataclass
class Drill:
    duration_s: float
    rate: float
    kills: int
    folder: Path
    log: Callable[[str], None] = print

    def run(self) -> AuditReport:
        with LocalBroker(self.folder / "kafka") as broker:
            env = self._env(broker.bootstrap_servers)
            settings = Settings.from_env(env)
            self._create_topics(settings)
            model = self._train_model()
            env["STREAMREC_MODEL_PATH"] = str(model)
            workers = [self._worker(env, name) for name in ("worker-a", "worker-b")]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.wait_ready()
            workload = Workload(
                broker.bootstrap_servers,
                {"click": settings.topics.click, "buy": settings.topics.buy},
                {settings.topics.click: CLICK_PARTITIONS, settings.topics.buy: STATE_PARTITIONS},
                load_artifact(model).item_ids,
                self.rate,
            )
            workload.start()
            try:
                self._chaos(broker, workers)
            finally:
                workload.stop()
            self.log(f"produced {workload.sent}, {workload.failed} sends failed")
            inputs = self._wait_for_outcomes(settings, workers)
            for worker in workers:
                if worker.stop() != 0:
                    self.log(f"{worker.log_path.name} did not stop cleanly")
            bootstrap = settings.kafka.bootstrap_servers
            return audit(
                settings,
                load_artifact(model),
                inputs,
                read_topic(bootstrap, settings.sequenced_topic),
                [r.value for r in read_topic(bootstrap, settings.topics.recommendations)],
                [r.value for r in read_topic(bootstrap, settings.topics.dead_letters)],
                latest_per_key(read_topic(bootstrap, f"{settings.worker.app_id}-user-state-changelog")),
            )

    def _chaos(self, broker: LocalBroker, workers: list[WorkerProcess]) -> None:
        """The kills, one broker crash and one 2 -> 1 -> 2 rebalance, spread over the duration."""
        actions: list[tuple[str, Callable[[], None]]] = [
            (f"SIGKILL {workers[n % 2].log_path.stem}", lambda w=workers[n % 2]: _crash_and_restart(w))
            for n in range(self.kills)
        ]
        actions.insert(len(actions) // 2, ("kill -9 the broker, restart it", lambda: _crash_broker(broker)))
        rebalance = ("scale 2 -> 1 -> 2", lambda: self._scale_down_and_up(workers[1]))
        actions.insert(len(actions) // 2 + 1, rebalance)
        step = self.duration_s / (len(actions) + 1)
        started = time.monotonic()
        for n, (what, act) in enumerate(actions, start=1):
            _wait_until_time(started + n * step)
            self.log(f"[{time.monotonic() - started:5.0f} s] {what}")
            act()
        _wait_until_time(started + self.duration_s)

    def _scale_down_and_up(self, worker: WorkerProcess) -> None:
        worker.stop()
        _wait_until_time(time.monotonic() + min(20.0, self.duration_s / 10))  # one worker serves alone
        worker.start()

    def _wait_for_outcomes(self, settings: Settings, workers: list[WorkerProcess]) -> list[InputRecord]:
        """The input records, once every one has a list or a dead letter (or after 5 minutes)."""
        bootstrap = settings.kafka.bootstrap_servers
        inputs = read_topic(bootstrap, settings.topics.click) + read_topic(bootstrap, settings.topics.buy)
        wanted = {(r.topic, r.partition, r.offset) for r in inputs}
        outcomes = OutcomeSources(bootstrap, [settings.topics.recommendations, settings.topics.dead_letters])
        deadline = time.monotonic() + 300
        next_report = time.monotonic() + 10
        try:
            while not wanted <= outcomes.read_new() and time.monotonic() < deadline:
                for worker in workers:
                    if not worker.alive():
                        worker.start()
                if time.monotonic() > next_report:
                    self.log(f"waiting for {len(wanted - outcomes.seen)} of {len(wanted)} records to end")
                    next_report += 10
        finally:
            outcomes.close()
        return inputs

    def _env(self, bootstrap: str) -> dict[str, str]:
        app_id = "chaos"
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMREC_APP_ID": app_id,
            "STREAMREC_CLICK_TOPIC": f"{app_id}-click",
            "STREAMREC_BUY_TOPIC": f"{app_id}-buy",
            "STREAMREC_RECOMMENDATIONS_TOPIC": f"{app_id}-recommendations",
            "STREAMREC_DEAD_LETTER_TOPIC": f"{app_id}-dead-letters",
            "STREAMREC_MODEL_UPDATES_TOPIC": f"{app_id}-model-updates",
            "STREAMREC_TOPIC_PARTITIONS": str(STATE_PARTITIONS),
            "STREAMREC_MODEL_STORE": str(self.folder / "model-store"),
            "STREAMREC_TOP_K": "10",
            "STREAMREC_KAFKA_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
            "STREAMREC_SHUTDOWN_TIMEOUT_S": "30",
        }

    def _worker(self, env: dict[str, str], name: str) -> WorkerProcess:
        overrides = {
            "STREAMREC_DATA_DIR": str(self.folder / name),
            "STREAMREC_WEB_PORT": str(free_ports(1)[0]),
        }
        return WorkerProcess({**env, **overrides}, self.folder / f"{name}.log")

    def _create_topics(self, settings: Settings) -> None:
        from kafka.admin import NewTopic

        counts = {settings.topics.click: CLICK_PARTITIONS, settings.topics.buy: STATE_PARTITIONS}
        for name in (settings.topics.recommendations, settings.topics.dead_letters):
            counts[name] = STATE_PARTITIONS
        create_missing_topics(settings, [NewTopic(name, n, 1) for name, n in counts.items()])

    def _train_model(self) -> Path:
        data = write_synthetic_sessions(self.folder / "train.tsv", n_items=200, n_sessions=1500)
        return train_with_cli(data, self.folder / "model", "--epochs", "2", "--hidden", "32", "--seed", "1")


def _crash_and_restart(worker: WorkerProcess) -> None:
    worker.kill()
    worker.start()


def _crash_broker(broker: LocalBroker) -> None:
    broker.kill()
    time.sleep(5)  # the outage itself, not a readiness wait: restart() waits until the broker answers
    broker.restart()


def _wait_until_time(moment: float) -> None:
    if (delay := moment - time.monotonic()) > 0:
        time.sleep(delay)


def read_topic(bootstrap: str, topic: str) -> list[InputRecord]:
    """Every record of ``topic`` up to its current end, partition by partition in offset order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: dict[int, list[InputRecord]] = {tp.partition: [] for tp in partitions}
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                records[tp.partition] += [
                    InputRecord(topic, r.partition, r.offset, r.key, r.value) for r in batch
                ]
        return [record for p in sorted(records) for record in records[p]]
    finally:
        consumer.close()


def keep_logs(folder: Path) -> Path:
    """Copy the workers' logs (each appended to across restarts) out of ``folder``, which is deleted."""
    kept = Path(tempfile.mkdtemp(prefix="streamrec-chaos-logs-"))
    for log in folder.glob("*.log"):
        shutil.copy(log, kept)
    return kept


# Worker log lines worth reading when a drill fails: the offset guard's seeks and failed batches.
NOTABLE = re.compile(
    r"jumped past|could not seek|reading them again|stored nothing|Traceback|crashed|exception", re.IGNORECASE
)


def notable_log_lines(folder: Path, most: int = 40) -> list[str]:
    """The workers' log lines that say what the offset guard and the batches went through, the
    latest ``most`` in time order (each line starts with its time stamp)."""
    lines = sorted(
        (line.rstrip(), log.stem)
        for log in folder.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if NOTABLE.search(line)
    )
    return [f"{worker}: {line}" for line, worker in lines[-most:]]


def latest_per_key(records: list[InputRecord]) -> dict[bytes, bytes]:
    return {record.key: record.value for record in records if record.key is not None}


class OutcomeSources:
    """The input positions that lists and dead letters name, read as they arrive."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        from kafka import KafkaConsumer

        self.seen: set[tuple[str, int, int]] = set()
        self._consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap.split(","),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    def read_new(self, wait_s: float = 2.0) -> set[tuple[str, int, int]]:
        for batch in self._consumer.poll(timeout_ms=int(wait_s * 1000), max_records=50_000).values():
            for record in batch:
                source = json.loads(record.value)["source"]
                self.seen.add((source["topic"], source["partition"], source["offset"]))
        return self.seen

    def close(self) -> None:
        self._consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.drill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=360, help="seconds under chaos (default 360)")
    parser.add_argument("--rate", type=float, default=150, help="records per second (default 150)")
    parser.add_argument("--kills", type=int, default=5, help="worker SIGKILLs (default 5)")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and state in this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamrec-chaos-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report = Drill(args.duration, args.rate, args.kills, folder).run()
        if not report.passed:
            print("\n".join(notable_log_lines(folder)))
            if args.keep is None:
                print(f"worker logs kept in {keep_logs(folder)}")
    print("\n".join(report.lines()))
    print("chaos audit: " + ("PASSED" if report.passed else "FAILED"))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
