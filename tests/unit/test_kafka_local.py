"""Fast tests of streamer.tools.kafka_local: no JVM and no network; java and mvn are small shell scripts."""

import base64
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from streamer.cli import main
from streamer.tools.kafka_local.broker import (
    BrokerInfo,
    BrokerStartError,
    LocalBroker,
    find_running,
    free_ports,
    new_cluster_id,
    render_properties,
    sasl_plain_properties,
    server_properties,
    stop_running,
)
from streamer.tools.kafka_local.jars import (
    INSTALL_HINT,
    JARS_DIR_ENV,
    KafkaSetupError,
    ensure_kafka_jars,
    jars_dir,
)

MARKER_JAR = "kafka_2.13-4.1.1.jar"
# A mvn that copies "the jars" into -DoutputDirectory, as dependency:copy-dependencies does.
FAKE_MVN_OK = f"""for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${{arg#*=}}";; esac; done
touch "$out/{MARKER_JAR}" "$out/kafka-clients-4.1.1.jar"
"""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """``fake_bin("java", "<sh script>")`` puts a fake executable first on a PATH without java or mvn."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ps", "sleep", "touch"):  # what the code under test and the scripts use
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    monkeypatch.setenv("PATH", str(bin_dir))

    def add(name: str, script: str) -> None:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)

    return add


@pytest.fixture
def jar_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty jar cache location, through the environment override."""
    cache = tmp_path / "cache" / "jars"
    monkeypatch.setenv(JARS_DIR_ENV, str(cache))
    return cache


@pytest.fixture
def cached_jars(jar_cache: Path) -> Path:
    jar_cache.mkdir(parents=True)
    (jar_cache / MARKER_JAR).touch()
    return jar_cache


# server.properties


def test_server_properties_describe_one_combined_kraft_node_on_loopback(tmp_path):
    props = server_properties(port=19092, controller_port=19093, data_dir=tmp_path / "data")
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"


def test_every_internal_topic_needs_only_one_replica(tmp_path):
    props = server_properties(port=1, controller_port=2, data_dir=tmp_path)
    for topic in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert props[f"{topic}.replication.factor"] == "1"
        assert props[f"{topic}.min.isr"] == "1"


def test_partitions_and_extra_properties_are_applied_last(tmp_path):
    extra = {"listeners": "SASL_PLAINTEXT://127.0.0.1:1", "sasl.enabled.mechanisms": "PLAIN"}
    props = server_properties(port=1, controller_port=2, data_dir=tmp_path, num_partitions=3, extra=extra)
    assert props["num.partitions"] == "3"
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:1"
    assert props["sasl.enabled.mechanisms"] == "PLAIN"


def test_zero_partitions_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        server_properties(port=1, controller_port=2, data_dir=tmp_path, num_partitions=0)


def test_a_sasl_listener_accepts_its_users_while_the_controller_stays_plaintext(tmp_path):
    sasl = sasl_plain_properties(port=1, controller_port=2, sasl_port=3, users={"app": "s3cret", "ops": "pw"})
    props = server_properties(port=1, controller_port=2, data_dir=tmp_path, extra=sasl)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_PLAINTEXT://127.0.0.1:3"
    )
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:3"
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert protocols == {
        "CONTROLLER": "PLAINTEXT",
        "PLAINTEXT": "PLAINTEXT",
        "SASL_PLAINTEXT": "SASL_PLAINTEXT",
    }
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required user_app="s3cret" user_ops="pw";'
    )


@pytest.mark.parametrize("users", [{}, {"app": 'pa"ss'}, {"a\\pp": "pass"}])
def test_sasl_users_must_exist_and_be_quotable(users):
    with pytest.raises(ValueError):
        sasl_plain_properties(port=1, controller_port=2, sasl_port=3, users=users)


def test_rendered_properties_are_key_value_lines_with_escaped_backslashes():
    text = render_properties({"node.id": "1", "log.dirs": r"C:\kafka"})
    assert text == "node.id=1\nlog.dirs=C:\\\\kafka\n"


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(2)
    assert len(set(ports)) == 2
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_cluster_ids_are_16_random_bytes_in_base64url():
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# jars


def test_jar_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(JARS_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert jars_dir() == tmp_path / ".cache" / "streamrec" / "kafka-4.1.1" / "jars"


def test_jar_dir_can_be_overridden(jar_cache):
    assert jars_dir() == jar_cache


def test_cached_jars_need_neither_java_nor_maven(fake_bin, cached_jars):
    assert ensure_kafka_jars(progress=pytest.fail) == cached_jars


def test_missing_java_says_what_to_install(fake_bin, jar_cache):
    fake_bin("mvn", "exit 0\n")
    with pytest.raises(KafkaSetupError, match="`java` was not found on PATH") as error:
        ensure_kafka_jars()
    assert "apt-get install openjdk-17-jre-headless maven" in str(error.value)


def test_missing_maven_says_what_to_install(fake_bin, jar_cache):
    fake_bin("java", "exit 0\n")
    with pytest.raises(KafkaSetupError, match="`mvn` was not found on PATH") as error:
        ensure_kafka_jars()
    assert INSTALL_HINT in str(error.value)


def test_first_run_fetches_into_a_staging_dir_then_renames_it(fake_bin, jar_cache):
    fake_bin("java", "exit 0\n")
    fake_bin("mvn", FAKE_MVN_OK)
    messages: list[str] = []
    assert ensure_kafka_jars(progress=messages.append) == jar_cache
    assert sorted(p.name for p in jar_cache.iterdir()) == ["kafka-clients-4.1.1.jar", MARKER_JAR]
    assert messages == ["fetching Kafka 4.1.1 jars from Maven Central (first run only)…"]
    assert [p.name for p in jar_cache.parent.iterdir()] == ["jars"]  # no staging dir left behind


def test_an_empty_cache_dir_is_filled(fake_bin, jar_cache):
    jar_cache.mkdir(parents=True)
    fake_bin("java", "exit 0\n")
    fake_bin("mvn", FAKE_MVN_OK)
    assert (ensure_kafka_jars(progress=lambda _: None) / MARKER_JAR).is_file()


def test_a_cache_dir_with_other_content_is_not_overwritten(fake_bin, jar_cache):
    jar_cache.mkdir(parents=True)
    (jar_cache / "notes.txt").touch()
    fake_bin("java", "exit 0\n")
    fake_bin("mvn", FAKE_MVN_OK)
    with pytest.raises(KafkaSetupError, match="remove it"):
        ensure_kafka_jars(progress=lambda _: None)
    assert [p.name for p in jar_cache.iterdir()] == ["notes.txt"]


def test_unreachable_maven_central_is_named(fake_bin, jar_cache):
    fake_bin("java", "exit 0\n")
    fake_bin(
        "mvn",
        'echo "[ERROR] Plugin org.apache.maven.plugins:maven-dependency-plugin:3.8.1 could not be resolved:'
        ' Could not transfer artifact ... repo.maven.apache.org: Name or service not known -> [Help 1]"\n'
        'echo "[ERROR] "\nexit 1\n',
    )
    with pytest.raises(KafkaSetupError, match=r"cannot download Kafka 4.1.1 from Maven Central") as error:
        ensure_kafka_jars(progress=lambda _: None)
    assert "Name or service not known" in str(error.value)
    assert "\n" not in str(error.value)
    assert list(jar_cache.parent.iterdir()) == []


def test_other_maven_failures_show_the_first_error(fake_bin, jar_cache):
    fake_bin("java", "exit 0\n")
    fake_bin("mvn", 'echo "[ERROR] The build could not read 1 project"\necho "[ERROR] more"\nexit 1\n')
    with pytest.raises(
        KafkaSetupError, match=r"^Maven failed to fetch the Kafka 4.1.1 jars: The build could not"
    ):
        ensure_kafka_jars(progress=lambda _: None)


# LocalBroker without a JVM


def test_bootstrap_servers_need_a_started_broker():
    with pytest.raises(RuntimeError, match="not running"):
        _ = LocalBroker().bootstrap_servers


def test_failed_storage_format_is_reported_and_cleaned_up(fake_bin, cached_jars, tmp_path):
    fake_bin("java", 'echo "Error: Could not find or load main class kafka.tools.StorageTool" >&2\nexit 1\n')
    state_dir = tmp_path / "kafka"
    with pytest.raises(
        BrokerStartError, match=r"(?s)formatting .*exit code 1.*Could not find or load main class"
    ):
        LocalBroker(state_dir).start()
    assert not state_dir.exists()


def test_a_broker_that_dies_at_startup_is_reported_with_its_output(fake_bin, cached_jars, tmp_path):
    fake_bin("java", 'case "$*" in *StorageTool*) exit 0;; esac\necho "boom: port in use"\nexit 3\n')
    state_dir = tmp_path / "kafka"
    with pytest.raises(BrokerStartError, match=r"(?s)exited with code 3 while starting.*boom: port in use"):
        LocalBroker(state_dir).start()
    assert not state_dir.exists()


def test_a_broker_that_never_gets_ready_times_out_and_is_stopped(fake_bin, cached_jars, tmp_path):
    pid_file = tmp_path / "java.pid"
    fake_bin("java", f'case "$*" in *StorageTool*) exit 0;; esac\necho $$ > {pid_file}\nexec sleep 60\n')
    state_dir = tmp_path / "kafka"
    with pytest.raises(BrokerStartError, match="did not become ready within 1 s"):
        LocalBroker(state_dir, start_timeout=1.0).start()
    assert not state_dir.exists()
    ps = subprocess.run(["ps", "-p", pid_file.read_text().strip()], capture_output=True)
    assert ps.returncode == 1  # no such process: terminated and reaped


# finding and stopping a detached broker


@pytest.fixture
def fake_broker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A sleeping process whose command line looks like the broker of ``state_dir``, plus its broker.json."""
    state_dir = tmp_path / "a-rather-long-state-directory-name-to-exceed-narrow-terminals" / "kafka"
    (state_dir / "data").mkdir(parents=True)
    config = state_dir / "server.properties"
    config.touch()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(config)])
    info = BrokerInfo(proc.pid, 1, 2, "127.0.0.1:1", str(state_dir))
    (state_dir / "broker.json").write_text(json.dumps(asdict(info)))
    yield proc, state_dir
    proc.kill()
    proc.wait()


def test_a_running_broker_is_found_even_in_a_narrow_terminal(fake_broker, monkeypatch):
    proc, state_dir = fake_broker
    monkeypatch.setenv("COLUMNS", "20")  # ps would otherwise cut the command line
    found = find_running(state_dir)
    assert found is not None and found.pid == proc.pid


def test_stop_running_terminates_the_broker_and_deletes_its_state(fake_broker):
    proc, state_dir = fake_broker
    stopped = stop_running(state_dir, timeout=10)
    assert stopped is not None and stopped.pid == proc.pid
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert not state_dir.exists()


def test_a_new_broker_will_not_replace_a_running_one(fake_broker, cached_jars, fake_bin):
    fake_bin("java", "exit 0\n")
    proc, state_dir = fake_broker
    with pytest.raises(KafkaSetupError, match=f"pid {proc.pid}.* already running"):
        LocalBroker(state_dir).start()
    assert (state_dir / "data").is_dir()


def test_a_stale_pid_file_is_not_a_running_broker(fake_broker):
    proc, state_dir = fake_broker
    proc.kill()
    proc.wait()
    assert find_running(state_dir) is None


def test_a_live_process_that_is_not_this_broker_is_ignored(tmp_path):
    info = BrokerInfo(
        pid=1, port=1, controller_port=2, bootstrap_servers="127.0.0.1:1", state_dir=str(tmp_path)
    )
    (tmp_path / "broker.json").write_text(json.dumps(asdict(info)))
    assert find_running(tmp_path) is None


# the `streamrec kafka` command


def test_status_of_nothing_is_not_running(tmp_path, capsys):
    assert main(["kafka", "status", "--state-dir", str(tmp_path / "kafka")]) == 3
    assert capsys.readouterr().out.startswith("not running")


def test_status_reports_a_running_broker(fake_broker, capsys):
    proc, state_dir = fake_broker
    assert main(["kafka", "status", "--state-dir", str(state_dir)]) == 0
    assert capsys.readouterr().out == f"running: 127.0.0.1:1 (pid {proc.pid}, state dir {state_dir})\n"


def test_start_reuses_a_running_broker_and_prints_the_export_line(fake_broker, capsys):
    _, state_dir = fake_broker
    assert main(["kafka", "start", "--state-dir", str(state_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1\n"
    assert "already running" in captured.err


def test_start_without_java_is_a_one_line_error_with_exit_code_2(fake_bin, cached_jars, tmp_path, capsys):
    assert main(["kafka", "start", "--state-dir", str(tmp_path / "kafka")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 2  # the progress line and the error
    assert captured.err.splitlines()[-1].startswith("streamrec kafka: `java` was not found on PATH")


def test_partitions_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["kafka", "start", "--partitions", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_fetch_prints_the_jar_folder(cached_jars, capsys):
    assert main(["kafka", "fetch"]) == 0
    assert capsys.readouterr().out == f"{cached_jars}\n"
