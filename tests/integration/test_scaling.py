"""Scaling the streamer 2 -> 1 -> 2 while events flow, the way the Kubernetes StatefulSet runs it:
one data directory per worker (its PersistentVolumeClaim, kept when scaled down), static group
membership named after the pod, standby replicas.

A static member does not leave the group when it stops (aiokafka sends no LeaveGroup with a
``group_instance_id``), so its partitions move only when the broker expires its session: this test
shortens the session timeout (``STREAMREC_KAFKA_SESSION_TIMEOUT_S``) to keep that wait short.
"""

import logging
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.state import UserState
from streamer.worker_process import WorkerProcess
from tests.integration.conftest import StreamerSetup
from tests.support.kafka_io import TopicReader, latest_per_key

pytestmark = pytest.mark.e2e

STATEFULSET = Path(__file__).parents[2] / "deploy" / "k8s" / "base" / "streamer-statefulset.yaml"
PODS = ("streamrec-streamer-0", "streamrec-streamer-1")
USERS = [f"user-{n}" for n in range(24)]
SESSION_TIMEOUT_S = 15
STEP_INTERVAL_S = 0.3
# Faust's group metadata is not the plain consumer protocol's: kafka-python warns on every describe.
logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)


def streamer_pod_spec() -> dict:
    return yaml.safe_load(STATEFULSET.read_text())["spec"]["template"]["spec"]


class Pod:
    """One streamer worker as one StatefulSet pod runs it: its own data directory (its claim) and the pod
    name as static membership id. A restart reuses the directory, as a pod reattached to its claim does."""

    def __init__(self, setup: StreamerSetup, name: str) -> None:
        self.name = name
        self.setup = setup
        self.worker: WorkerProcess | None = None

    def start(self) -> None:
        self.worker = self.setup.worker(
            self.name,
            STREAMREC_CONSUMER_INSTANCE_ID=self.name,
            STREAMREC_STANDBY_REPLICAS="1",
            STREAMREC_RECENT_ITEMS="10000",  # keep every item, so the test can compare them all
            STREAMREC_KAFKA_SESSION_TIMEOUT_S=str(SESSION_TIMEOUT_S),
        ).start()

    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive()

    def stop(self) -> float:
        """Clean stop (what the kubelet's SIGTERM does); returns how long it took."""
        assert self.worker is not None
        started = time.monotonic()
        code = self.worker.stop()
        assert code == 0, f"{self.name} exited with {code}:\n{self.worker.log_tail()}"
        return time.monotonic() - started

    def get(self, path: str) -> tuple[int, str]:
        assert self.worker is not None
        url = f"http://127.0.0.1:{self.worker.env['STREAMREC_WEB_PORT']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def events_in(self) -> float:
        """This worker's count of consumed input messages, from its Prometheus endpoint."""
        status, text = self.get("/metrics")
        assert status == 200
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "streamrec_events_in_total"
        )


class EventFlow:
    """Produces one click per user every STEP_INTERVAL_S in a background thread until stopped."""

    def __init__(self, bootstrap: str, topic: str, vocab: list[str]) -> None:
        self.topic = topic
        self.vocab = vocab
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
        self.produced: list[Event] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0
        while not self.stopping.is_set():
            events = [
                Event(f"{user}-{step}", user, self.vocab[(13 * u + 7 * step) % len(self.vocab)], 1.7e9 + step)
                for u, user in enumerate(USERS)
            ]
            for event in events:
                self.producer.send(self.topic, key=event.user_id.encode(), value=event.to_bytes())
            self.producer.flush()
            with self.lock:
                self.produced.extend(events)
            step += 1
            self.stopping.wait(STEP_INTERVAL_S)

    def snapshot(self) -> set[str]:
        with self.lock:
            return {e.event_id for e in self.produced}

    def stop(self) -> list[Event]:
        """Stop producing (again: no-op) and return every event produced."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        self.producer.close()
        return self.produced


class ListTracker:
    """The event ids that have a recommendation list so far."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.reader = TopicReader(bootstrap, topic)
        self.listed: set[str] = set()

    def covers(self, event_ids: set[str], within_s: float = 2.0) -> bool:
        """Whether every event of ``event_ids`` has a list, waiting up to ``within_s`` for the last ones."""
        deadline = time.monotonic() + within_s
        while not event_ids <= self.listed and time.monotonic() < deadline:
            for records in self.reader.consumer.poll(timeout_ms=200).values():
                self.listed.update(Recommendation.from_bytes(r.value).event_id for r in records)
        return event_ids <= self.listed


def static_members(bootstrap: str, group: str) -> set[str]:
    """The group.instance.id of every member the group coordinator holds."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        members = admin.describe_groups([group])[group]["members"]
    finally:
        admin.close()
    return {m["group_instance_id"] for m in members}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, pods: list[Pod]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        dead = [p.name for p in pods if not p.alive()]
        assert not dead, f"{dead} died while waiting until {what}"
        assert time.monotonic() < deadline, f"not {what} within {timeout_s:.0f} s"
        time.sleep(0.2)


def test_scaling_2_1_2_while_events_flow_loses_no_event_and_no_state(
    kafka_bootstrap, streamer_setup, tmp_path
):
    setup = streamer_setup
    pod_spec = streamer_pod_spec()
    readiness_path = pod_spec["containers"][0]["readinessProbe"]["httpGet"]["path"]
    grace_s = pod_spec["terminationGracePeriodSeconds"]
    pods = [Pod(setup, name) for name in PODS]
    tracker = ListTracker(kafka_bootstrap, setup.topics["recommendations"])
    flow = EventFlow(kafka_bootstrap, setup.topics["click"], load_artifact(setup.model_path).item_ids)
    running = list(pods)

    def all_ready() -> bool:
        return all(p.get(readiness_path)[0] == 200 for p in running)

    def caught_up() -> bool:
        return tracker.covers(flow.snapshot())

    def members() -> set[str]:
        return static_members(kafka_bootstrap, setup.app_id)

    try:
        for pod in pods:
            pod.start()
        wait_until(all_ready, 90, "both workers are ready", running)
        assert members() == set(PODS)
        flow.thread.start()
        wait_until(lambda: all(p.events_in() > 0 for p in pods), 60, "both workers consume", running)

        # 2 -> 1. The stopped worker stays a member (no rebalance) until its session expires; then the
        # other one takes its partitions over, from its standby copies.
        stop_s = pods[1].stop()
        running = [pods[0]]
        assert stop_s < grace_s, f"a clean stop took {stop_s:.1f} s, the grace period is {grace_s} s"
        assert stop_s < SESSION_TIMEOUT_S, "the stop outlasted the session: the check below means nothing"
        assert members() == set(PODS)
        wait_until(lambda: members() == {PODS[0]}, SESSION_TIMEOUT_S + 30, "the session expired", running)
        wait_until(caught_up, 60, "every event has a list with one worker", running)

        # 1 -> 2. The pod comes back with its old data directory and gets partitions again.
        pods[1].start()
        running = list(pods)
        wait_until(all_ready, 90, "both workers are ready again", running)
        wait_until(lambda: pods[1].events_in() > 0, 60, "the restarted worker consumes", running)
        assert flow.thread.is_alive(), "events must flow through every step"
        flow.stop()
        wait_until(caught_up, 60, "every event has a list", running)
        for pod in running:
            assert pod.stop() < grace_s
    finally:
        flow.stop()
        tracker.reader.close()
        for pod in pods:
            if pod.alive():
                pod.worker.kill()

    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in flow.produced:
        by_user[event.user_id].append(event)
    changelog = latest_per_key(kafka_bootstrap, setup.changelog_topic, {u.encode() for u in USERS})
    for user, events in by_user.items():
        state = UserState.from_bytes(changelog[user.encode()])
        assert state.events_seen == len(events), user
        assert state.recent_items == [e.item_id for e in events], user
