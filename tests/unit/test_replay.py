"""``replay`` without a broker gives up within its timeout and says how many events were delivered;
the command's resume flag is checked."""

import time

import pytest

from schemas.events import Event
from streamer.cli import main
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import free_ports
from streamer.tools.replay import ReplayIncomplete, replay

EVENTS = [Event(f"e-{n}", f"user-{n}", "item-1", 1_700_000_000.0 + n) for n in range(20)]


def test_a_replay_to_a_broker_that_never_answers_fails_within_its_timeout_with_nothing_delivered():
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_ports(1)[0]}"})
    began = time.monotonic()
    with pytest.raises(ReplayIncomplete) as incomplete:
        replay(EVENTS, settings, progress=False, timeout_s=1.0)
    assert time.monotonic() - began < 10
    assert (incomplete.value.delivered, incomplete.value.total) == (0, len(EVENTS))
    assert str(incomplete.value).startswith(f"delivered 0 of {len(EVENTS)} events before KafkaTimeoutError")


def test_skip_must_not_be_negative(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(tmp_path / "events.tsv"), "--skip", "-1"])
    assert exit_info.value.code == 2
    assert "must be at least 0" in capsys.readouterr().err
