"""A real single-node Apache Kafka broker on loopback, run with plain ``java`` (no Docker).

One process is both KRaft controller and broker. Its state directory holds ``server.properties``,
``data/`` (the log dirs), ``logs/`` (``server.log`` and the JVM's own output) and ``broker.json``
(pid, ports and bootstrap address, so another process can find and stop a detached broker).
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from streamer.tools.kafka_local.jars import (
    KAFKA_VERSION,
    KafkaSetupError,
    ensure_kafka_jars,
    print_progress,
    require_tool,
)

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
READY_LINE = "Kafka Server started"
STATE_FILE = "broker.json"
_STATE_ENTRIES = ("server.properties", STATE_FILE, "data", "logs")
_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")


class BrokerStartError(KafkaSetupError):
    """The broker process died or did not become ready in time; the message ends with its log tail."""


class NoBrokerState(KafkaSetupError):
    """A restart found no formatted storage and ``broker.json`` to bring a broker back from."""


@dataclass(frozen=True)
class BrokerInfo:
    """What ``broker.json`` records about a running broker."""

    pid: int
    port: int
    controller_port: int
    bootstrap_servers: str
    state_dir: str
    kafka_version: str = KAFKA_VERSION
    sasl_bootstrap_servers: str | None = None


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports that were free a moment ago.

    All sockets stay open until every port is picked, so the ports differ from each other.
    """
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes it, without starting a JVM."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # would be read as a command-line option
            return cluster_id


def server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    num_partitions: int = 1,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The broker configuration: one combined KRaft node on 127.0.0.1, every internal topic with
    replication factor 1. Keys in ``extra`` override the generated ones (e.g. listeners for SASL)."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, not {num_partitions}")
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(num_partitions),
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
    }
    for topic in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        properties[f"{topic}.replication.factor"] = "1"
        properties[f"{topic}.min.isr"] = "1"
    properties.update(extra or {})
    return properties


def sasl_plain_properties(
    *, port: int, controller_port: int, sasl_port: int, users: Mapping[str, str]
) -> dict[str, str]:
    """Overrides for :func:`server_properties` that add a SASL_PLAINTEXT listener (mechanism PLAIN) on
    ``sasl_port`` accepting ``users`` (name -> password). The controller and inter-broker listeners
    stay PLAINTEXT, so only clients authenticate."""
    if not users:
        raise ValueError("a SASL listener needs at least one user")
    for value in (*users, *users.values()):
        if '"' in value or "\\" in value:
            raise ValueError("SASL user names and passwords may not contain quotes or backslashes")
    accepted = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {accepted};"
        ),
    }


def render_properties(properties: Mapping[str, str]) -> str:
    """Java properties text; backslashes are escaped, everything else is written as is."""
    lines = [f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


class LocalBroker:
    """A Kafka broker child process; ``with LocalBroker() as broker:`` starts and stops it.

    Without ``state_dir`` a temporary directory is used. With ``sasl_users`` (name -> password) the
    broker also listens for SASL_PLAINTEXT clients (mechanism PLAIN) at ``sasl_bootstrap_servers``;
    the PLAINTEXT listener stays for the controller, inter-broker traffic and test set-up. The broker
    runs in its own session, so a
    Ctrl-C in the terminal reaches only this process, which then stops the broker; after ``start()``
    returns, it keeps running until ``stop()`` (or ``stop_running(state_dir)`` from another process).

    For chaos tests, ``kill()`` crashes the broker (SIGKILL) and ``restart()`` brings it back on the
    same ports with the same data and cluster id; ``info`` keeps the address in between.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        num_partitions: int = 1,
        extra_properties: Mapping[str, str] | None = None,
        sasl_users: Mapping[str, str] | None = None,
        start_timeout: float = 120.0,
        progress: Callable[[str], None] = print_progress,
    ) -> None:
        self._requested_dir = state_dir
        self._num_partitions = num_partitions
        self._extra_properties = dict(extra_properties or {})
        self._sasl_users = dict(sasl_users or {})
        self._start_timeout = start_timeout
        self._progress = progress
        self._state_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: BrokerInfo | None = None
        self._log_start = 0  # where this run's part of server.log begins

    @property
    def info(self) -> BrokerInfo:
        if self._info is None:
            raise RuntimeError("the broker is not running")
        return self._info

    @property
    def bootstrap_servers(self) -> str:
        return self.info.bootstrap_servers

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.info.sasl_bootstrap_servers is None:
            raise RuntimeError("the broker was started without sasl_users")
        return self.info.sasl_bootstrap_servers

    def start(self) -> Self:
        """Start a new broker (fresh storage, new ports and cluster id) and return once a client can
        talk to it."""
        if self._proc is not None:
            raise RuntimeError("the broker is already running")
        jars = ensure_kafka_jars(self._progress)
        java = require_tool("java")
        self._state_dir = self._prepare_state_dir()
        try:
            config = self._configure(java, jars)
            self._spawn(java, jars, config)
            self._wait_until_ready()
            _write_state(self.info)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> Self:
        """Start the broker again on its state directory with the same ports, data and cluster id,
        after ``kill()``, after ``stop_running(state_dir, keep_data=True)``, or while it runs (it is
        stopped first, keeping its data); return once a client can talk to it. Unlike ``start()``,
        a failure leaves the state directory as it was."""
        state_dir = self._state_dir or (self._requested_dir.resolve() if self._requested_dir else None)
        if state_dir is None:
            raise RuntimeError("the broker has no state directory to restart from")
        self._state_dir = state_dir
        if self._proc is not None:
            proc = self._proc
            _terminate(proc.pid, lambda: proc.poll() is None, 30.0)
            self._proc = None
        else:
            stop_running(state_dir, keep_data=True)
        previous = _read_state(state_dir)
        config = state_dir / "server.properties"
        if previous is None or not config.is_file() or not (state_dir / "data" / "meta.properties").is_file():
            raise NoBrokerState(f"no broker state to restart from in {state_dir}")
        jars = ensure_kafka_jars(self._progress)
        java = require_tool("java")
        self._spawn(java, jars, config, previous)
        try:
            self._wait_until_ready()
        except BaseException:
            self.kill()
            raise
        _write_state(self.info)
        return self

    def kill(self) -> None:
        """Crash the broker: SIGKILL, no controlled shutdown. Data, ports and cluster id stay, so
        ``restart()`` brings it back; ``stop()`` deletes them."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after ``timeout`` seconds; then delete the state."""
        if self._proc is not None:
            proc = self._proc
            _terminate(proc.pid, lambda: proc.poll() is None, timeout)
            self._proc = None
        self._info = None
        if self._state_dir is not None:
            _remove_state(self._state_dir)
            self._state_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _prepare_state_dir(self) -> Path:
        if self._requested_dir is None:
            return Path(tempfile.mkdtemp(prefix="streamrec-kafka-"))
        state_dir = self._requested_dir.resolve()
        running = find_running(state_dir)
        if running is not None:
            raise KafkaSetupError(f"a Kafka broker (pid {running.pid}) is already running in {state_dir}")
        _remove_state(state_dir)  # leftovers of a broker that was killed: storage must be formatted afresh
        state_dir.mkdir(parents=True, exist_ok=True)
        return state_dir

    def _configure(self, java: str, jars: Path) -> Path:
        """Pick ports, write ``server.properties`` and format the storage with a new cluster id."""
        state_dir = self._require_state_dir()
        port, controller_port, sasl_port = free_ports(3)
        (state_dir / "logs").mkdir()
        sasl = (
            sasl_plain_properties(
                port=port, controller_port=controller_port, sasl_port=sasl_port, users=self._sasl_users
            )
            if self._sasl_users
            else {}
        )
        properties = server_properties(
            port=port,
            controller_port=controller_port,
            data_dir=state_dir / "data",
            num_partitions=self._num_partitions,
            extra={**sasl, **self._extra_properties},
        )
        config = state_dir / "server.properties"
        config.write_text(render_properties(properties))
        _format_storage(java, jars, state_dir, config)
        self._info = BrokerInfo(
            pid=0,
            port=port,
            controller_port=controller_port,
            bootstrap_servers=f"127.0.0.1:{port}",
            state_dir=str(state_dir),
            sasl_bootstrap_servers=f"127.0.0.1:{sasl_port}" if self._sasl_users else None,
        )
        return config

    def _spawn(self, java: str, jars: Path, config: Path, previous: BrokerInfo | None = None) -> None:
        """Run the broker on ``config``; ``info`` becomes ``previous`` (default: what ``_configure``
        chose) with the new pid."""
        state_dir = self._require_state_dir()
        server_log = state_dir / "logs" / "server.log"
        self._log_start = server_log.stat().st_size if server_log.exists() else 0
        with open(state_dir / "logs" / "stdout.log", "ab") as output:
            self._proc = subprocess.Popen(
                _java_command(java, jars, state_dir, *_JVM_OPTIONS, "kafka.Kafka", str(config)),
                cwd=state_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._info = replace(previous or self.info, pid=self._proc.pid)

    def _wait_until_ready(self) -> None:
        if not _wait_for(self._is_ready, self._start_timeout, interval=0.2):
            raise BrokerStartError(
                f"the Kafka broker did not become ready within {self._start_timeout:.0f} s"
                + _log_tail(self._require_state_dir())
            )

    def _is_ready(self) -> bool:
        """Ready means the broker logged that it started and answers a metadata request."""
        assert self._proc is not None
        state_dir = self._require_state_dir()
        code = self._proc.poll()
        if code is not None:
            raise BrokerStartError(
                f"the Kafka broker exited with code {code} while starting" + _log_tail(state_dir)
            )
        server_log = state_dir / "logs" / "server.log"
        return _file_contains(server_log, READY_LINE, self._log_start) and _answers_metadata(
            self.bootstrap_servers
        )

    def _require_state_dir(self) -> Path:
        if self._state_dir is None:
            raise RuntimeError("the broker has no state directory")
        return self._state_dir


def find_running(state_dir: Path) -> BrokerInfo | None:
    """The broker recorded in ``state_dir`` if its process is still alive, else ``None``."""
    info = _read_state(state_dir)
    return info if info is not None and _is_broker_process(info.pid, Path(info.state_dir)) else None


def _read_state(state_dir: Path) -> BrokerInfo | None:
    """What ``broker.json`` in ``state_dir`` records (the broker may have stopped since), if anything."""
    try:
        return BrokerInfo(**json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def stop_running(state_dir: Path, timeout: float = 30.0, keep_data: bool = False) -> BrokerInfo | None:
    """Stop the broker recorded in ``state_dir`` (if any) and, unless ``keep_data``, delete its state;
    return what was stopped."""
    state_dir = state_dir.resolve()
    info = find_running(state_dir)
    if info is not None:
        _terminate(info.pid, lambda: _is_broker_process(info.pid, state_dir), timeout)
    if not keep_data:
        _remove_state(state_dir)
    return info


def _java_command(java: str, jars: Path, state_dir: Path, *args: str) -> list[str]:
    return [
        java,
        f"-Dkafka.logs.dir={state_dir / 'logs'}",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        str(jars / "*"),  # expanded by java itself
        *args,
    ]


def _format_storage(java: str, jars: Path, state_dir: Path, config: Path) -> None:
    """``kafka-storage format``; with a static ``controller.quorum.voters`` it must not get --standalone."""
    command = _java_command(
        java, jars, state_dir, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config)
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=state_dir)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise BrokerStartError(
            f"formatting Kafka's storage failed (exit code {result.returncode}):\n{output}"
        )


def _answers_metadata(bootstrap_servers: str) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="streamrec-readiness",
            bootstrap_timeout_ms=5000,
            request_timeout_ms=5000,
        )
    except KafkaError:
        return False
    try:
        return bool(admin.describe_cluster()["brokers"])
    except KafkaError:
        return False
    finally:
        admin.close()


def _wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it is true (-> True) or ``timeout`` seconds have passed (-> False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _terminate(pid: int, is_running: Callable[[], bool], timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_for(lambda: not is_running(), wait):
            return
    raise KafkaSetupError(f"the Kafka broker (pid {pid}) survived SIGKILL")


def _is_broker_process(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is alive and is the broker of ``state_dir`` (not a process that reused the pid)."""
    # -ww: never cut the command line to the terminal width ($COLUMNS), or the path check fails.
    command = ["ps", "-ww", "-o", "stat=,args=", "-p", str(pid)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    stat, _, args = result.stdout.strip().partition(" ")
    return (
        result.returncode == 0
        and not stat.startswith("Z")
        and "kafka.Kafka" in args
        and str(state_dir / "server.properties") in args
    )


def _write_state(info: BrokerInfo) -> None:
    path = Path(info.state_dir) / STATE_FILE
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")


def _remove_state(state_dir: Path) -> None:
    """Delete what a broker put in ``state_dir`` (nothing else), then the directory if it is empty."""
    for name in _STATE_ENTRIES:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with suppress(OSError):
        state_dir.rmdir()


def _file_contains(path: Path, text: str, start: int = 0) -> bool:
    """Whether ``text`` occurs in ``path`` from byte ``start`` on."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return text.encode() in f.read()
    except FileNotFoundError:
        return False


def _log_tail(state_dir: Path, lines: int = 25) -> str:
    tails = []
    for name in ("stdout.log", "server.log"):
        path = state_dir / "logs" / name
        with suppress(OSError):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            if tail:
                tails.append(f"\n--- last lines of {path} ---\n" + "\n".join(tail))
    return "".join(tails) or f" (no log output in {state_dir / 'logs'})"
