"""The broker crashes (kill -9) and comes back on the same port: the worker survives, ``/readyz``
answers 503 once Kafka has been unreachable for the grace period and 200 again when it is back,
and the clients' repeated connection errors are logged a few times with counts, not thousands."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.tools.kafka_local import LocalBroker
from streamer.tools.worker_process import WorkerProcess
from streamer.worker.broker_watch import PROBE_INTERVAL_S
from tests.integration.conftest import StreamerSetup, new_streamer_setup
from tests.support.kafka_io import TopicReader, produce_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

GRACE_S = 5.0


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    with LocalBroker(num_partitions=1) as broker:
        yield broker


@pytest.fixture
def outage_setup(broker, unique_name, trained_model, tmp_path) -> StreamerSetup:
    return new_streamer_setup(
        broker.bootstrap_servers,
        unique_name("streamrec"),
        trained_model,
        tmp_path,
        {"STREAMREC_BROKER_GRACE_S": str(GRACE_S), "STREAMREC_LOG_FORMAT": "json"},
    )


def readiness(worker: WorkerProcess) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as answer:
        return answer.code, json.load(answer)


def warnings_and_errors(log: str) -> list[dict]:
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [e for e in entries if e["level"] in {"warning", "error", "critical"}]


def lists_flow(bootstrap: str, setup: StreamerSetup, worker: WorkerProcess, tag: str) -> None:
    vocab = load_artifact(setup.model_path).item_ids
    events = [Event(f"{tag}-{n}", f"u{n}", vocab[n], 1_700_000_000.0 + n) for n in range(10)]
    reader = TopicReader(bootstrap, setup.topics["recommendations"])
    try:
        produce_events(bootstrap, setup.topics["click"], events)
        lists = [Recommendation.from_bytes(m.value) for m in reader.read(len(events), worker=worker)]
    finally:
        reader.close()
    assert {r.event_id for r in lists} >= {e.event_id for e in events}


def test_readiness_follows_the_broker_through_a_crash_and_repeated_errors_are_counted(broker, outage_setup):
    setup = outage_setup
    worker = setup.worker().start()
    try:
        worker.wait_ready()
        lists_flow(broker.bootstrap_servers, setup, worker, "before")
        logged_before = len(worker.log_path.read_text())

        killed_at = time.monotonic()
        broker.kill()
        # Faust may turn readiness off sooner for its own reasons (the group coordinator is gone).
        wait_for(
            lambda: readiness(worker)[1]["broker_connected"] is False,
            timeout_s=GRACE_S + 30,
            what="/readyz to report the broker gone",
        )
        # The grace period runs from the last answered probe, at most one probe interval before the kill.
        gone_after_s = time.monotonic() - killed_at
        assert gone_after_s > GRACE_S - PROBE_INTERVAL_S, f"counted as gone after {gone_after_s:.1f} s"
        assert readiness(worker)[0] == 503

        broker.restart()
        wait_for(lambda: readiness(worker)[0] == 200, timeout_s=120, what="/readyz to answer 200 again")
        outage_s = time.monotonic() - killed_at
        outage_log = worker.log_path.read_text()[logged_before:]
        assert worker.alive(), worker.log_tail()
        lists_flow(broker.bootstrap_servers, setup, worker, "after")
    finally:
        assert worker.stop() == 0, worker.log_tail()

    noisy = warnings_and_errors(outage_log)
    # Unlimited, aiokafka logs ~100 connection errors a second while the broker is gone.
    assert len(noisy) < 50, f"{len(noisy)} warnings and errors in a {outage_s:.0f} s outage"
    assert any("(repeated " in e["message"] for e in noisy)
