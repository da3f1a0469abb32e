"""A local broker comes back with its data, ports and cluster id after it was killed with SIGKILL or
stopped with --keep-data: through ``LocalBroker.kill()``/``restart()`` and ``streamrec kafka restart``."""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from streamer.cli import main
from streamer.tools.kafka_local import LocalBroker

pytestmark = pytest.mark.integration

MESSAGES = [f"message-{n}".encode() for n in range(50)]


def produce(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in MESSAGES:
            producer.send(topic, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < len(MESSAGES) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in records)
    finally:
        consumer.close()
    return values


def cluster_id(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()


def test_a_killed_broker_restarts_with_its_messages_on_the_same_address(tmp_path):
    with LocalBroker(tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        before = cluster_id(bootstrap)
        produce(bootstrap, "kept")
        killed_pid = broker.info.pid
        broker.kill()
        with pytest.raises(ProcessLookupError):
            os.kill(killed_pid, 0)
        broker.restart()
        assert broker.bootstrap_servers == bootstrap
        assert broker.info.pid != killed_pid
        assert cluster_id(bootstrap) == before
        assert consume_all(bootstrap, "kept") == MESSAGES


def test_the_cli_restarts_a_broker_after_sigkill_and_after_stop_keeping_its_data(tmp_path, capsys):
    state_dir = tmp_path / "kafka"
    assert main(["kafka", "start", "--state-dir", str(state_dir)]) == 0
    bootstrap = _exported(capsys.readouterr().out)
    try:
        produce(bootstrap, "kept")
        os.kill(json.loads((state_dir / "broker.json").read_text())["pid"], signal.SIGKILL)
        assert _wait_until_not_running(state_dir)

        assert main(["kafka", "restart", "--state-dir", str(state_dir)]) == 0
        assert _exported(capsys.readouterr().out) == bootstrap
        assert consume_all(bootstrap, "kept") == MESSAGES

        assert main(["kafka", "stop", "--keep-data", "--state-dir", str(state_dir)]) == 0
        assert "kept its data" in capsys.readouterr().out
        assert main(["kafka", "restart", "--state-dir", str(state_dir)]) == 0
        assert _exported(capsys.readouterr().out) == bootstrap
        assert consume_all(bootstrap, "kept") == MESSAGES
    finally:
        assert main(["kafka", "stop", "--state-dir", str(state_dir)]) == 0
    assert not state_dir.exists()


def _exported(stdout: str) -> str:
    line = stdout.splitlines()[-1]
    return re.fullmatch(r"export KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)", line).group(1)


def _wait_until_not_running(state_dir: Path, timeout_s: float = 10.0) -> bool:
    """The killed broker was started by this process: `status` turns 3 once it is gone or a zombie."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if main(["kafka", "status", "--state-dir", str(state_dir)]) == 3:
            return True
        time.sleep(0.1)
    return False
