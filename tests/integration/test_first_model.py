"""A shop that starts streamrec with no model: the retrainer waits until its window holds
STREAMREC_RETRAIN_FIRST_MODEL_EVENTS events, then trains, stores and announces the first model, with
the recent item popularity the workers fall back on."""

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.event_files import read_event_table
from models.presets import write_preset_file
from models.synthetic import write_synthetic_sessions
from models.train import TrainConfig
from schemas.events import Event
from streamer.common.settings import Settings
from streamer.registry import load_announced, read_announcements
from streamer.tools.worker_process import WorkerProcess
from tests.integration.conftest import new_streamer_setup
from tests.support.kafka_io import produce_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FIRST_MODEL_EVENTS = 1_000


def synthetic_events(folder) -> list[Event]:
    table = read_event_table(write_synthetic_sessions(folder / "events.tsv", n_items=80, n_sessions=260))
    return [
        Event(f"e{n}", f"u{session}", item, time)
        for n, (session, item, time) in enumerate(zip(table.sessions, table.items, table.times, strict=True))
    ]


def window_events(retrainer: WorkerProcess) -> float:
    url = f"http://127.0.0.1:{retrainer.env['STREAMREC_RETRAINER_METRICS_PORT']}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return next((s.value for s in samples if s.name == "streamrec_retrainer_window_events"), 0.0)


def decisions(retrainer: WorkerProcess) -> list[dict]:
    marker = "retrain decision "
    lines = retrainer.log_path.read_text().splitlines()
    return [json.loads(line.split(marker, 1)[1]) for line in lines if marker in line]


def test_a_retrainer_with_no_model_announces_the_first_once_its_window_holds_enough_events(
    kafka_bootstrap, unique_name, tmp_path
):
    setup = new_streamer_setup(kafka_bootstrap, unique_name("first-model"), tmp_path / "no-model", tmp_path)
    preset = tmp_path / "tiny.preset.json"
    write_preset_file(preset, TrainConfig(hidden=16, batch_size=16, n_sample=64, epochs=1), about={})
    events = synthetic_events(tmp_path)
    assert len(events) > FIRST_MODEL_EVENTS + 200
    below, rest = events[: FIRST_MODEL_EVENTS - 300], events[FIRST_MODEL_EVENTS - 300 :]
    overrides = {
        "STREAMREC_RETRAIN_FIRST_MODEL_EVENTS": str(FIRST_MODEL_EVENTS),
        "STREAMREC_RETRAIN_EVERY_EVENTS": "0",  # only the first-model rule may start training
        "STREAMREC_RETRAIN_EVERY_S": "0",
        "STREAMREC_RETRAIN_PRESET_FILE": str(preset),
    }
    settings = Settings.from_env(setup.env(), **overrides)
    retrainer = setup.retrainer(**overrides).start()
    try:
        produce_events(kafka_bootstrap, setup.topics["click"], below)
        wait_for(lambda: window_events(retrainer) == len(below), 60, "the retrainer to take in the events")
        assert retrainer.alive(), retrainer.log_tail()
        assert read_announcements(settings, lambda refusal: None)[0] == []
        assert decisions(retrainer) == []

        produce_events(kafka_bootstrap, setup.topics["click"], rest)
        wait_for(lambda: read_announcements(settings, lambda refusal: None)[0], 60, "the first model")
    finally:
        assert retrainer.stop() == 0, retrainer.log_tail()

    announcements, _ = read_announcements(settings, lambda refusal: None)
    assert len({a.version for a in announcements}) == 1
    artifact = load_announced(settings, announcements[-1])
    assert artifact.metrics["recall@20"] > 0
    produced_items = {e.item_id for e in events}
    assert artifact.popular_items and {item for item, _ in artifact.popular_items} <= produced_items

    [decision] = decisions(retrainer)
    assert decision["promoted"] and decision["current"] is None
    assert decision["train_events"] + decision["holdout_events"] >= FIRST_MODEL_EVENTS
    log = retrainer.log_path.read_text()
    assert f"of the {FIRST_MODEL_EVENTS} events needed for the first model" in log
    assert f"first model {artifact.version} announced" in log
