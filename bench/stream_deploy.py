"""What a streaming run runs against: a broker, and per system under test its own topics and process
(a streamer worker, or the bare Kafka pipe), started and stopped by the benchmark."""

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamer.common.admin import ensure_model_updates_topic, ensure_topics
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import LocalBroker, free_ports
from streamer.tools.worker_process import WorkerProcess

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def kafka(partitions: int) -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker started (and stopped) here."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        print(f"using the Kafka cluster at {given}", flush=True)
        yield given
        return
    print("starting a local Kafka broker…", flush=True)
    with LocalBroker(num_partitions=partitions) as broker:
        print(f"Kafka is up at {broker.bootstrap_servers}", flush=True)
        yield broker.bootstrap_servers


@dataclass(frozen=True)
class Deployment:
    """One isolated system under test: its own topic names, consumer group and directories."""

    bootstrap: str
    name: str  # unique: prefixes topics and the app id
    partitions: int
    workdir: Path

    @property
    def topics(self) -> dict[str, str]:
        return {kind: f"{self.name}-{kind}" for kind in ("click", "buy", "lists", "dead-letters", "models")}

    def worker_env(self, model: Path, store: Path, extra: dict[str, str]) -> dict[str, str]:
        topics = self.topics
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMREC_APP_ID": self.name,
            "STREAMREC_CLICK_TOPIC": topics["click"],
            "STREAMREC_BUY_TOPIC": topics["buy"],
            "STREAMREC_RECOMMENDATIONS_TOPIC": topics["lists"],
            "STREAMREC_DEAD_LETTER_TOPIC": topics["dead-letters"],
            "STREAMREC_MODEL_UPDATES_TOPIC": topics["models"],
            "STREAMREC_MODEL_STORE": str(store),
            "STREAMREC_TOPIC_PARTITIONS": str(self.partitions),
            "STREAMREC_MODEL_PATH": str(model),
            "STREAMREC_DATA_DIR": str(self.workdir / "state"),
            "STREAMREC_WEB_PORT": str(free_ports(1)[0]),
            **extra,
        }

    def create_topics(self) -> Settings:
        settings = Settings.from_env(self.worker_env(Path("unused"), Path("unused"), {}))
        ensure_topics(settings)
        ensure_model_updates_topic(settings)
        return settings


@dataclass(frozen=True)
class System:
    """A running system under test: where it reads and writes, and its process."""

    deployment: Deployment
    pid: int
    metrics_url: str | None = None  # a streamer worker's Prometheus endpoint

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_gb(self) -> dict[str, float]:
        """The process's resident memory now and at its peak so far (VmRSS, VmHWM), in GB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        kilobytes = {
            m.group(1): int(m.group(2)) for m in re.finditer(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M)
        }
        return {"rss_gb": kilobytes["VmRSS"] / 2**20, "peak_rss_gb": kilobytes["VmHWM"] / 2**20}

    def batches(self) -> tuple[float, float]:
        """(events, micro-batches) the worker has applied so far; (0, 0) without metrics."""
        if self.metrics_url is None:
            return 0.0, 0.0
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        total = re.search(r"^streamrec_batch_size_sum (\S+)$", text, re.MULTILINE)
        count = re.search(r"^streamrec_batch_size_count (\S+)$", text, re.MULTILINE)
        return (float(total.group(1)), float(count.group(1))) if total and count else (0.0, 0.0)


@contextlib.contextmanager
def worker(deployment: Deployment, model: Path, store: Path, extra: dict[str, str]) -> Iterator[System]:
    """A streamer worker, ready to consume; stopped (and its log kept) on the way out."""
    deployment.workdir.mkdir(parents=True, exist_ok=True)
    deployment.create_topics()
    env = deployment.worker_env(model, store, extra)
    process = WorkerProcess(env, deployment.workdir / "worker.log").start()
    try:
        process.wait_ready()
        assert process.pid is not None
        yield System(deployment, process.pid, f"http://127.0.0.1:{env['STREAMREC_WEB_PORT']}/metrics")
    finally:
        process.stop()


@contextlib.contextmanager
def kafka_pipe(deployment: Deployment, size: int, batch_max: int, within_ms: int) -> Iterator[System]:
    """The bare Kafka pipe process (:mod:`bench.kafka_pipe`), positioned at the end of its input."""
    deployment.workdir.mkdir(parents=True, exist_ok=True)
    deployment.create_topics()
    topics = deployment.topics
    command = [sys.executable, "-m", "bench.kafka_pipe", deployment.bootstrap, topics["click"], topics["buy"]]
    command += [topics["lists"], "--size", str(size), "--partitions", str(deployment.partitions)]
    command += ["--batch-max", str(batch_max), "--within-ms", str(within_ms)]
    with open(deployment.workdir / "pipe.log", "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=log)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the Kafka pipe did not start; see {deployment.workdir / 'pipe.log'}")
        yield System(deployment, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wall_clock_ms() -> int:
    return int(time.time() * 1000)
