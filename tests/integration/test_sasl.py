"""Kafka security settings reach every Kafka client the project uses. A second local broker accepts
SASL/PLAIN clients on its own listener (its controller and inter-broker listeners stay PLAINTEXT); the
streamer worker, the retrainer and the kafka-python and aiokafka clients connect to it with the
documented settings only, and a wrong password is refused."""

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.common.kafka_config import aiokafka_config, kafka_python_config
from streamer.common.kafka_probe import EXIT_AUTHENTICATION, EXIT_PROTOCOL
from streamer.common.settings import Settings
from streamer.tools.kafka_local import LocalBroker
from streamer.tools.worker_process import WorkerProcess
from tests.integration.conftest import StreamerSetup, new_streamer_setup

pytestmark = pytest.mark.e2e

USER, PASSWORD = "streamrec", "s3cret-for-tests"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalBroker]:
    with LocalBroker(num_partitions=1, sasl_users={USER: PASSWORD, "someone-else": "other"}) as broker:
        yield broker


def security_env(broker: LocalBroker, password: str = PASSWORD) -> dict[str, str]:
    """The documented settings (deploy/README.md) for a SASL_PLAINTEXT listener with PLAIN."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.sasl_bootstrap_servers,
        "STREAMREC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAMREC_KAFKA_SASL_MECHANISM": "PLAIN",
        "STREAMREC_KAFKA_SASL_USERNAME": USER,
        "STREAMREC_KAFKA_SASL_PASSWORD": password,
    }


@pytest.fixture
def sasl_setup(sasl_broker, unique_name, trained_model, tmp_path) -> StreamerSetup:
    return new_streamer_setup(
        sasl_broker.sasl_bootstrap_servers,
        unique_name("streamrec"),
        trained_model,
        tmp_path,
        security_env(sasl_broker),
    )


def test_kafka_python_and_aiokafka_clients_authenticate_with_the_settings(sasl_broker, unique_name):
    settings = Settings.from_env(security_env(sasl_broker))
    topic = unique_name("sasl")
    producer = KafkaProducer(acks="all", **kafka_python_config(settings))
    producer.send(topic, key=b"k", value=b"over kafka-python").get(timeout=30)
    producer.close()

    async def aiokafka_roundtrip() -> list[bytes]:
        sender = AIOKafkaProducer(**aiokafka_config(settings))
        await sender.start()
        try:
            await sender.send_and_wait(topic, key=b"k", value=b"over aiokafka")
        finally:
            await sender.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **aiokafka_config(settings))
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=10_000, max_records=2)
        finally:
            await consumer.stop()
        return [record.value for records in batches.values() for record in records]

    assert asyncio.run(aiokafka_roundtrip()) == [b"over kafka-python", b"over aiokafka"]


@contextmanager
def refused_by(broker: LocalBroker) -> Iterator[None]:
    """Assert that the broker refused an authentication inside the block (and not, say, a timeout)."""
    server_log = Path(broker.info.state_dir) / "logs" / "server.log"
    before = server_log.read_text(errors="replace").count("Authentication failed")
    yield
    assert server_log.read_text(errors="replace").count("Authentication failed") > before


def test_a_wrong_password_is_refused_by_both_client_libraries(sasl_broker):
    wrong = Settings.from_env(security_env(sasl_broker, password="not-the-password"))
    with refused_by(sasl_broker), pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_timeout_ms=5000, **kafka_python_config(wrong))

    async def connect() -> None:
        producer = AIOKafkaProducer(request_timeout_ms=5000, **aiokafka_config(wrong))
        try:
            await producer.start()
        finally:
            await producer.stop()

    with refused_by(sasl_broker), pytest.raises(KafkaConnectionError):
        asyncio.run(connect())


def test_the_streamer_and_the_retrainer_work_over_sasl(sasl_setup):
    setup = sasl_setup
    settings = Settings.from_env(setup.env())
    vocab = load_artifact(setup.model_path).item_ids
    events = [Event(f"e-{n}", f"user-{n % 5}", vocab[n % len(vocab)], 1_700_000_000.0 + n) for n in range(20)]
    worker = setup.worker().start()
    retrainer = setup.retrainer().start()
    try:
        worker.wait_ready()
        producer = KafkaProducer(acks="all", **kafka_python_config(settings))
        for event in events:
            producer.send(settings.topics.click, key=event.user_id.encode(), value=event.to_bytes())
        producer.flush()
        producer.close()
        lists = read_lists(settings, len(events))
        assert sorted(r.event_id for r in lists) == sorted(e.event_id for e in events)
        wait_for_window(retrainer, len(events))
    finally:
        assert worker.stop() == 0, worker.log_tail()
        assert retrainer.stop() == 0, retrainer.log_tail()


def read_lists(settings: Settings, count: int, timeout_s: float = 60.0) -> list[Recommendation]:
    consumer = KafkaConsumer(
        settings.topics.recommendations,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        **kafka_python_config(settings),
    )
    lists: list[Recommendation] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(lists) < count and time.monotonic() < deadline:
            lists += [Recommendation.from_bytes(m.value) for m in consumer]
    finally:
        consumer.close()
    return lists


def wait_for_window(retrainer: WorkerProcess, count: int, timeout_s: float = 60.0) -> None:
    """The retrainer consumed ``count`` events over SASL: its Prometheus counter says so."""
    url = f"http://127.0.0.1:{retrainer.env['STREAMREC_RETRAINER_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + timeout_s
    seen = 0.0
    while seen < count:
        assert retrainer.alive(), retrainer.log_tail()
        assert time.monotonic() < deadline, f"the retrainer took in {seen} of {count} events"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            text = ""
        seen = sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "streamrec_retrainer_events_total"
        )
        time.sleep(0.5)


def test_a_worker_with_a_wrong_password_stops(sasl_broker, sasl_setup):
    worker = sasl_setup.worker(STREAMREC_KAFKA_SASL_PASSWORD="not-the-password")
    with refused_by(sasl_broker):
        worker.start()
        deadline = time.monotonic() + 90
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
    if worker.alive():
        worker.kill()
        pytest.fail(f"a worker with a wrong password kept running:\n{worker.log_tail()}")
    assert worker.process.returncode != 0


def run_cli(command: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``streamrec <command>`` in a child process with ``env`` over this one's, as a user runs it."""
    args = [sys.executable, "-m", "streamer.cli", command]
    if command == "replay":
        data = tmp_path / "events.tsv"
        data.write_text("SessionId\tItemId\tTime\n1\t10\t1.0\n")
        args.append(str(data))
    env = {
        **os.environ,
        "STREAMREC_DATA_DIR": str(tmp_path / "state"),
        "STREAMREC_RETRAINER_DIR": str(tmp_path / "retrainer"),
        **env,
    }
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", ["worker", "retrainer", "replay"])
def test_a_wrong_password_is_reported_as_an_authentication_failure(sasl_broker, command, tmp_path):
    began = time.monotonic()
    with refused_by(sasl_broker):
        result = run_cli(command, security_env(sasl_broker, password="not-the-password"), tmp_path)
    assert result.returncode == EXIT_AUTHENTICATION
    assert result.stderr.splitlines() == [
        f"streamrec {command}: authentication failed for user {USER!r} via SASL/PLAIN at "
        f"{sasl_broker.sasl_bootstrap_servers}: Authentication failed: Invalid username or password"
    ]
    assert time.monotonic() - began < 30  # imports and the probe; not kafka-python's ~37 s of retries


def test_plaintext_against_the_sasl_listener_is_reported_as_a_protocol_mismatch(sasl_broker, tmp_path):
    result = run_cli("worker", {"KAFKA_BOOTSTRAP_SERVERS": sasl_broker.sasl_bootstrap_servers}, tmp_path)
    assert result.returncode == EXIT_PROTOCOL
    assert result.stderr.splitlines() == [
        f"streamrec worker: protocol mismatch: {sasl_broker.sasl_bootstrap_servers} closed the connection "
        "while asking for metadata: the listener expects SASL authentication (SASL_PLAINTEXT or SASL_SSL), "
        "or is not a broker's (STREAMREC_KAFKA_SECURITY_PROTOCOL is PLAINTEXT)"
    ]
