"""``streamrec replay`` against a broker that dies mid-replay: it stops within its timeout, says how
many events Kafka acknowledged, and ``--skip`` continues after them once the broker is back."""

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from streamer.tools.kafka_local import LocalBroker
from streamer.tools.replay import EXIT_INCOMPLETE, read_events

pytestmark = pytest.mark.integration

EVENTS = 3000
TIMEOUT_S = 10
CLICKS, BUYS = "replay-clicks", "replay-buys"


def write_events(path: Path) -> Path:
    rows = ["SessionId\tItemId\tTime\tEventType"]
    rows += [
        f"{n % 97}\t{n % 50}\t{1_700_000_000 + n}\t{'buy' if n % 10 == 0 else 'click'}" for n in range(EVENTS)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def replay(bootstrap: str, data: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "streamer.cli", "replay", str(data), "--bootstrap-servers", bootstrap]
    command += ["--click-topic", CLICKS, "--buy-topic", BUYS, "--timeout", str(TIMEOUT_S), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def messages_on_topics(bootstrap: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in (CLICKS, BUYS)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def event_ids_on_topics(bootstrap: str, expected: int, timeout_s: float = 60.0) -> Counter[str]:
    consumer = KafkaConsumer(CLICKS, BUYS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    ids: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    try:
        while sum(ids.values()) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                ids.update(json.loads(record.value)["event_id"] for record in records)
        ids.update(  # anything beyond the expected count: duplicates
            json.loads(record.value)["event_id"]
            for records in consumer.poll(timeout_ms=2000).values()
            for record in records
        )
    finally:
        consumer.close()
    return ids


def test_a_replay_stops_when_the_broker_dies_and_resumes_after_what_was_delivered(tmp_path):
    data = write_events(tmp_path / "events.tsv")
    with LocalBroker(tmp_path / "kafka", num_partitions=3) as broker:
        bootstrap = broker.bootstrap_servers
        first = replay(bootstrap, data, "--rate", "300")
        deadline = time.monotonic() + 60
        while messages_on_topics(bootstrap) < 300:  # mid-replay: some events are on the topics
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        broker.kill()
        killed_at = time.monotonic()
        _, stderr = first.communicate(timeout=TIMEOUT_S + 30)
        assert time.monotonic() - killed_at < TIMEOUT_S + 30
        assert first.returncode == EXIT_INCOMPLETE, stderr
        [line] = stderr.splitlines()
        match = re.fullmatch(
            rf"streamrec replay: delivered (\d+) of {EVENTS} events before .+; resume with --skip (\d+)", line
        )
        assert match and match.group(1) == match.group(2), line
        delivered = int(match.group(1))
        assert 300 <= delivered < EVENTS

        broker.restart()
        second = replay(bootstrap, data, "--skip", str(delivered))
        stdout, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
        assert stdout.startswith(f"replayed {EVENTS - delivered} events")

        ids = event_ids_on_topics(bootstrap, EVENTS)
        assert len(ids) == EVENTS  # every event is there
        # Once each, except events sent but not acknowledged when the broker died: the broker may
        # have written them, and the resumed replay sends them again.
        order = [event.event_id for event in read_events(data)]
        twice = [order.index(event_id) for event_id, count in ids.items() if count != 1]
        assert all(position >= delivered for position in twice), (delivered, sorted(twice))
