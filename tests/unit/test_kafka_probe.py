"""The start-up probe of the bootstrap servers, against addresses where no broker is: nothing listening,
a name that cannot resolve, a listener that never answers, and listeners that answer in TLS or HTTP.
The SASL cases run against a real broker in tests/integration/test_sasl.py."""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from streamer.common.kafka_probe import (
    EXIT_PROTOCOL,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_UNRESOLVED,
    ProbeFailure,
    probe_bootstrap,
)
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import free_ports


def settings_for(servers: str) -> Settings:
    return Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": servers})


def probe_failure(servers: str, timeout_s: float = 2.0) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as failure:
        probe_bootstrap(settings_for(servers), timeout_s)
    return failure.value


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket that accepts connections (the kernel does, from its backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def answering(listener: socket.socket, reply: bytes) -> str:
    """Serve ``reply`` to the first connection on ``listener``, then close it; return its address."""

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_closed_port_is_reported_as_connection_refused():
    port = free_ports(1)[0]
    failure = probe_failure(f"127.0.0.1:{port}")
    assert failure.exit_code == EXIT_UNREACHABLE
    assert str(failure).startswith(f"connection refused by 127.0.0.1:{port}")


def test_an_unknown_host_is_reported_as_a_name_that_does_not_resolve():
    failure = probe_failure("kafka.streamrec.invalid:9092")
    assert failure.exit_code == EXIT_UNRESOLVED
    assert str(failure).startswith("cannot resolve the Kafka host 'kafka.streamrec.invalid'")


def test_a_listener_that_never_answers_times_out_within_the_bound(listener):
    began = time.monotonic()
    failure = probe_failure(f"127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5)
    assert time.monotonic() - began < 2
    assert failure.exit_code == EXIT_TIMEOUT
    assert "while asking for API versions (timed out)" in str(failure)


def test_a_tls_answer_to_a_plaintext_client_is_a_protocol_mismatch(listener):
    address = answering(listener, b"\x15\x03\x03\x00\x02\x02\x50")  # a TLS alert record
    failure = probe_failure(address)
    assert failure.exit_code == EXIT_PROTOCOL
    assert str(failure) == (
        f"protocol mismatch: {address} answered asking for API versions in TLS: the listener expects SSL "
        "or SASL_SSL (STREAMREC_KAFKA_SECURITY_PROTOCOL is PLAINTEXT)"
    )


def test_an_http_server_is_not_a_kafka_listener(listener):
    address = answering(listener, b"HTTP/1.1 400 Bad Request\r\n\r\n")
    failure = probe_failure(address)
    assert failure.exit_code == EXIT_PROTOCOL
    assert "in HTTP: it is not a Kafka listener" in str(failure)


def test_a_tls_client_against_a_plaintext_listener_is_a_protocol_mismatch(listener):
    address = answering(listener, b"")  # a Kafka listener closes on a TLS ClientHello
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": address, "STREAMREC_KAFKA_SECURITY_PROTOCOL": "SSL"}
    )
    with pytest.raises(ProbeFailure) as failure:
        probe_bootstrap(settings, 2.0)
    assert failure.value.exit_code == EXIT_PROTOCOL
    assert str(failure.value).startswith(f"protocol mismatch: the TLS handshake with {address} failed")


def test_with_several_servers_the_one_that_got_furthest_is_reported(listener):
    closed = free_ports(1)[0]
    silent = listener.getsockname()[1]
    failure = probe_failure(f"nowhere.invalid:1,127.0.0.1:{closed},127.0.0.1:{silent}", timeout_s=0.5)
    assert failure.exit_code == EXIT_TIMEOUT
    assert str(failure).endswith("(none of the 3 bootstrap servers works)")


@pytest.mark.parametrize("command", ["worker", "retrainer", "replay"])
def test_each_command_stops_with_one_line_and_the_exit_code(command, tmp_path):
    port = free_ports(1)[0]
    args = [sys.executable, "-m", "streamer.cli", command]
    if command == "replay":
        data = tmp_path / "events.tsv"
        data.write_text("SessionId\tItemId\tTime\n1\t10\t1.0\n")
        args.append(str(data))
    env = {
        "PATH": "/usr/bin:/bin",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "STREAMREC_DATA_DIR": str(tmp_path / "state"),
        "STREAMREC_RETRAINER_DIR": str(tmp_path / "retrainer"),
    }
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == EXIT_UNREACHABLE
    assert result.stderr.splitlines() == [
        f"streamrec {command}: connection refused by 127.0.0.1:{port}: nothing listens there "
        "(is Kafka running, is the port right?)"
    ]
