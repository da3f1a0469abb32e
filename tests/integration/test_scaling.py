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
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.tools.worker_process import WorkerProcess
from streamer.worker.state import UserState
from tests.integration.conftest import StreamerSetup
from tests.support.kafka_io import TopicReader, latest_per_key

pytestmark = pytest.mark.e2e

STATEFULSET = Path(__file__).parents[2] / "deploy" / "k8s" / "base" / "streamer-statefulset.yaml"
PODS = ("streamrec-streamer-0", "streamrec-streamer-1")
USERS = [f"user-{n}" for n in range(24)]
SESSION_TIMEOUT_S = 15
STEP_INTERVAL_S = 0.3
# Past a step's deadline the test waits this much longer: a late list still arrives, a lost one never
# does. Late is reported as a warning (speed is the benchmarks' business), lost fails the test.
LATE_GRACE_S = 120
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

    def status(self, path: str) -> int:
        """The HTTP status of ``path`` on the worker's web port (0: no answer)."""
        assert self.worker is not None
        url = f"http://127.0.0.1:{self.worker.env['STREAMREC_WEB_PORT']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0


class EventFlow:
    """Produces one click per user every STEP_INTERVAL_S in a background thread until stopped."""

    def __init__(self, bootstrap: str, topic: str, vocab: list[str]) -> None:
        self.topic = topic
        self.vocab = vocab
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
        self.produced: list[Event] = []
        self.positions: dict[str, tuple[int, int]] = {}  # event id -> (partition, offset), for diagnosis
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
            sent = [
                self.producer.send(self.topic, key=e.user_id.encode(), value=e.to_bytes()) for e in events
            ]
            self.producer.flush()
            with self.lock:
                self.produced.extend(events)
                for event, future in zip(events, sent, strict=True):
                    self.positions[event.event_id] = (future.value.partition, future.value.offset)
            step += 1
            self.stopping.wait(STEP_INTERVAL_S)

    def snapshot(self) -> set[str]:
        with self.lock:
            return {e.event_id for e in self.produced}

    def stop(self) -> None:
        """Stop producing (again: no-op)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        self.producer.close()


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


class Checkpoint:
    """Every event produced up to a point has a list; the point is the first moment at least
    ``new_steps`` more steps have been produced. It is then fixed, so a worker that lags a little
    behind a flow that goes on still reaches it."""

    def __init__(self, flow: EventFlow, tracker: ListTracker, new_steps: int = 1) -> None:
        self.flow = flow
        self.tracker = tracker
        self.after = len(flow.snapshot()) + new_steps * len(USERS)
        self.target: set[str] = set()

    def reached(self) -> bool:
        if not self.target:
            produced = self.flow.snapshot()
            if len(produced) < self.after:
                return False
            self.target = produced
        return self.tracker.covers(self.target)

    def missing(self) -> str:
        unlisted = sorted((self.flow.positions[e], e) for e in self.target - self.tracker.listed)
        first = ", ".join(f"{event} at {partition}/{offset}" for (partition, offset), event in unlisted[:8])
        return f"({len(unlisted)} of {len(self.target)} events have no list, first: {first})"


def click_partitions(bootstrap: str, group: str, click_topic: str) -> dict[str, list[int]]:
    """Each member of the group (by group.instance.id) and the click partitions assigned to it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        members = admin.describe_groups([group])[group]["members"]
    finally:
        admin.close()
    return {
        m["group_instance_id"]: sorted(
            p
            for t in m["member_assignment"]["assigned_partitions"]
            if t["topic"] == click_topic
            for p in t["partitions"]
        )
        for m in members
    }


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    pods: list[Pod],
    detail: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        dead = [p.name for p in pods if not p.alive()]
        assert not dead, f"{dead} died while waiting until {what}"
        assert time.monotonic() < deadline, f"not {what} within {timeout_s:.0f} s {detail()}"
        time.sleep(0.2)


def test_scaling_2_1_2_while_events_flow_loses_no_event_and_no_state(kafka_bootstrap, streamer_setup):
    setup = streamer_setup
    pod_spec = streamer_pod_spec()
    readiness_path = pod_spec["containers"][0]["readinessProbe"]["httpGet"]["path"]
    grace_s = pod_spec["terminationGracePeriodSeconds"]
    pods = [Pod(setup, name) for name in PODS]
    tracker = ListTracker(kafka_bootstrap, setup.topics["recommendations"])
    flow = EventFlow(kafka_bootstrap, setup.topics["click"], load_artifact(setup.model_path).item_ids)
    running = list(pods)

    def all_ready() -> bool:
        return all(p.status(readiness_path) == 200 for p in running)

    late: list[str] = []

    def wait_for_lists(what: str, timeout_s: float, new_steps: int = 1) -> None:
        checkpoint = Checkpoint(flow, tracker, new_steps)
        started = time.monotonic()
        try:
            wait_until(checkpoint.reached, timeout_s, f"every event has a list {what}", running)
        except AssertionError:
            if not all(p.alive() for p in running):
                raise
            overdue = checkpoint.missing()
            wait_until(
                checkpoint.reached,
                LATE_GRACE_S,
                f"LOST: not every event has a list {what}",
                running,
                checkpoint.missing,
            )
            waited = time.monotonic() - started
            late.append(
                f"{what}: late, not lost: all arrived after {waited:.0f} s, deadline {timeout_s} s {overdue}"
            )

    def assignment() -> dict[str, list[int]]:
        return click_partitions(kafka_bootstrap, setup.app_id, setup.topics["click"])

    try:
        for pod in pods:
            pod.start()
        wait_until(all_ready, 90, "both workers are ready", running)
        assert set(assignment()) == set(PODS)
        assert all(assignment().values()), "each worker must own click partitions"
        flow.thread.start()
        wait_for_lists("with two workers", 30)

        # 2 -> 1. The stopped worker stays a member (no rebalance) until its session expires; then the
        # other one takes its partitions over, from its standby copies.
        stop_s = pods[1].stop()
        running = [pods[0]]
        assert stop_s < grace_s, f"a clean stop took {stop_s:.1f} s, the grace period is {grace_s} s"
        assert stop_s < SESSION_TIMEOUT_S, "the stop outlasted the session: the check below means nothing"
        assert set(assignment()) == set(PODS)
        wait_until(
            lambda: set(assignment()) == {PODS[0]}, SESSION_TIMEOUT_S + 30, "the session expired", running
        )
        wait_for_lists("with one worker", 60)

        # 1 -> 2. The pod comes back with its old data directory and gets partitions again.
        pods[1].start()
        running = list(pods)
        wait_until(all_ready, 90, "both workers are ready again", running)
        assert all(assignment().values()), "the restarted worker must own click partitions again"
        # Events produced from now on in its partitions can only get lists from the restarted worker.
        wait_for_lists("with two workers again", 30)
        assert flow.thread.is_alive(), "events must flow through every step"
        flow.stop()
        wait_for_lists("at the end", 60, new_steps=0)
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
    for report in late:
        warnings.warn(report, stacklevel=1)
