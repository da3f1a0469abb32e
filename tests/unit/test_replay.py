"""``replay`` without a broker gives up within its timeout and says how many events were delivered;
the command's resume flag is checked; files are read as training reads them."""

import gzip
import time

import pytest

from models.event_files import parse_input_format
from schemas.events import Event, EventType
from streamer.cli import main
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import free_ports
from streamer.tools.replay import ReplayIncomplete, read_events, replay

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


def test_replay_reads_gzip_files_and_exports_as_training_does(tmp_path):
    tsv = tmp_path / "events.tsv.gz"
    tsv.write_bytes(
        gzip.compress(b"SessionId\tItemId\tTime\tEventType\n7\ti1\t2.0\tbuy\n7\ti2\t1.0\tclick\n")
    )
    first, second = read_events(tsv)
    assert (first.item_id, first.user_id, first.session_id, first.event_type) == (
        "i2",
        "session-7",
        "7",
        EventType.CLICK,
    )
    assert (second.event_id, second.event_type) == ("events.tsv-2", EventType.BUY)
    export = tmp_path / "export.csv"
    export.write_text("ts,visitor,sku\n5,v1,i9\n")
    (event,) = read_events(export, parse_input_format("session=visitor,item=sku,time=ts,user=visitor"))
    assert (event.user_id, event.item_id, event.event_time) == ("v1", "i9", 5.0)


def test_replay_of_a_file_it_cannot_read_says_so_before_contacting_kafka(tmp_path, capsys):
    path = tmp_path / "events.bin"
    path.write_bytes(b"\xff\xfe\x00")
    assert main(["replay", str(path), "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert f"streamrec replay: {path}: not a UTF-8 text file" in capsys.readouterr().err
