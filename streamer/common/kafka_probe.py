"""Checking the Kafka bootstrap servers before a command connects for real, so a wrong address,
protocol or password ends in one line naming what failed, with its own exit code, within seconds.

Without this, kafka-python and aiokafka retry every one of these failures the same way and end, after
~37 s, in the same ``KafkaTimeoutError: Unable to bootstrap``. The probe talks to each server with a
plain socket and kafka-python's protocol classes, step by step as a client does (resolve, connect,
TLS, ApiVersions, SASL, Metadata), so it knows which step failed. A PLAINTEXT client on a SASL
listener only shows at the Metadata step: the broker answers ApiVersions before authentication and
closes the connection on the first other request.
"""

import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import kafka.errors as kafka_errors
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from streamer.common.kafka_config import ssl_context
from streamer.common.settings import Settings

# Exit codes after sysexits.h, so a supervisor or a script can tell the failures apart.
EXIT_UNRESOLVED = 68  # EX_NOHOST
EXIT_UNREACHABLE = 69  # EX_UNAVAILABLE
EXIT_TIMEOUT = 75  # EX_TEMPFAIL
EXIT_PROTOCOL = 76  # EX_PROTOCOL
EXIT_AUTHENTICATION = 77  # EX_NOPERM

EXIT_CODES_HELP = f"""\
exit codes when Kafka cannot be used at start (one line on stderr says why):
  {EXIT_UNRESOLVED}  a bootstrap host name does not resolve
  {EXIT_UNREACHABLE}  connection refused (nothing listens at host:port) or host unreachable
  {EXIT_TIMEOUT}  no answer within STREAMREC_KAFKA_PROBE_TIMEOUT_S
  {EXIT_PROTOCOL}  TLS or protocol mismatch (e.g. PLAINTEXT against a SASL or SSL listener)
  {EXIT_AUTHENTICATION}  SASL authentication failed (user, password or mechanism)"""


@dataclass(frozen=True)
class ProbeFailure(Exception):
    """Why one bootstrap server cannot be used; ``step`` orders failures by how far the probe got."""

    message: str
    exit_code: int
    step: int

    def __str__(self) -> str:
        return self.message


# Steps, in the order a client takes them.
RESOLVE, CONNECT, TLS, API_VERSIONS, SASL, METADATA = range(6)


def probe_bootstrap(settings: Settings, timeout_s: float | None = None) -> None:
    """Return once one bootstrap server answers a Metadata request with the settings' security
    protocol and credentials; else raise the :class:`ProbeFailure` of the server that got furthest.
    Each server gets ``timeout_s`` (default: ``STREAMREC_KAFKA_PROBE_TIMEOUT_S``) for all steps."""
    timeout_s = settings.kafka.probe_timeout_s if timeout_s is None else timeout_s
    failures = []
    for server in settings.kafka.bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            _probe_server(settings, host, int(port), time.monotonic() + timeout_s)
            return
        except ProbeFailure as failure:
            failures.append(failure)
    furthest = max(failures, key=lambda failure: failure.step)
    if len(failures) == 1:
        raise furthest
    raise ProbeFailure(
        f"{furthest} (none of the {len(failures)} bootstrap servers works)", furthest.exit_code, furthest.step
    )


def require_kafka(settings: Settings, command: str) -> None:
    """:func:`probe_bootstrap`; on failure print ``<command>: <why>`` to stderr and exit with its code."""
    try:
        probe_bootstrap(settings)
    except ProbeFailure as failure:
        print(f"{command}: {failure}", file=sys.stderr)
        raise SystemExit(failure.exit_code) from None


def _probe_server(settings: Settings, host: str, port: int, deadline: float) -> None:
    address = f"{host}:{port}"
    protocol = settings.kafka.security_protocol
    sock = _connect(host, port, deadline)
    try:
        if protocol in {"SSL", "SASL_SSL"}:
            sock = _tls_handshake(sock, settings, host, address, deadline)
        session = _Session(sock, address, protocol, deadline)
        versions = session.api_versions()
        if protocol.startswith("SASL_"):
            session.authenticate(settings, host, versions)
        session.metadata(versions)
    finally:
        sock.close()


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    address = f"{host}:{port}"
    family, kind, proto, _, sockaddr = _resolve(host, port, deadline)[0]
    sock = socket.socket(family, kind, proto)
    sock.settimeout(_remaining(deadline, address, "connecting", CONNECT))
    try:
        sock.connect(sockaddr)
    except TimeoutError:
        sock.close()
        raise _timeout(address, "connecting", CONNECT) from None
    except ConnectionRefusedError:
        sock.close()
        raise ProbeFailure(
            f"connection refused by {address}: nothing listens there (is Kafka running, is the port right?)",
            EXIT_UNREACHABLE,
            CONNECT,
        ) from None
    except OSError as error:
        sock.close()
        message = f"cannot connect to {address}: {error.strerror}"
        raise ProbeFailure(message, EXIT_UNREACHABLE, CONNECT) from None
    return sock


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` bounded by the deadline: it may wait for a slow DNS server far longer. A daemon
    thread, so a resolver that never answers does not keep the process alive."""
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=lookup, name="kafka-probe-resolve", daemon=True)
    thread.start()
    thread.join(_remaining(deadline, f"{host}:{port}", f"resolving {host}", RESOLVE))
    if not outcome:
        raise _timeout(f"{host}:{port}", f"resolving {host}", RESOLVE)
    if isinstance(outcome[0], OSError):
        raise ProbeFailure(
            f"cannot resolve the Kafka host {host!r} ({host}:{port} in KAFKA_BOOTSTRAP_SERVERS): "
            f"{outcome[0].strerror}",
            EXIT_UNRESOLVED,
            RESOLVE,
        )
    return outcome[0]


def _tls_handshake(
    sock: socket.socket, settings: Settings, host: str, address: str, deadline: float
) -> ssl.SSLSocket:
    context = ssl_context(settings)
    assert context is not None
    sock.settimeout(_remaining(deadline, address, "doing the TLS handshake", TLS))
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        raise _timeout(address, "doing the TLS handshake", TLS) from None
    except ssl.SSLCertVerificationError as error:
        raise ProbeFailure(
            f"TLS handshake with {address} failed: {error.verify_message} (see STREAMREC_KAFKA_SSL_CAFILE)",
            EXIT_PROTOCOL,
            TLS,
        ) from None
    except (ssl.SSLError, ConnectionError) as error:
        raise ProbeFailure(
            f"protocol mismatch: the TLS handshake with {address} failed "
            f"({getattr(error, 'reason', None) or error}): is it a PLAINTEXT or SASL_PLAINTEXT listener? "
            f"(STREAMREC_KAFKA_SECURITY_PROTOCOL is {settings.kafka.security_protocol})",
            EXIT_PROTOCOL,
            TLS,
        ) from None


_HINTS = {"TLS": "the listener expects SSL or SASL_SSL", "HTTP": "it is not a Kafka listener"}


def _foreign_protocol(data: bytes) -> str | None:
    """What a first answer that is not a Kafka response speaks, from its first bytes."""
    if data[:1] in {b"\x15", b"\x16"} and data[1:2] == b"\x03":  # a TLS alert or handshake record
        return "TLS"
    if data.startswith(b"HTTP/"):
        return "HTTP"
    return None


def _remaining(deadline: float, address: str, doing: str, step: int) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout(address, doing, step)
    return left


def _timeout(address: str, doing: str, step: int) -> ProbeFailure:
    return ProbeFailure(f"no answer from {address} while {doing} (timed out)", EXIT_TIMEOUT, step)


class _Session:
    """Blocking request/response on one connection, with kafka-python's encoder and decoder."""

    def __init__(self, sock: socket.socket, address: str, protocol: str, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.protocol = protocol
        self.deadline = deadline
        self.parser = KafkaProtocol(client_id="streamrec-probe")

    def request(self, request: Any, step: int, doing: str) -> Any:
        """Send ``request`` and return its response; a closed connection or an answer that is not
        Kafka's is a protocol mismatch."""
        self.parser.send_request(request)
        try:
            self.sock.settimeout(_remaining(self.deadline, self.address, doing, step))
            self.sock.sendall(self.parser.send_bytes())
            while True:
                self.sock.settimeout(_remaining(self.deadline, self.address, doing, step))
                data = self.sock.recv(65536)
                if not data:
                    raise self.mismatch(step, f"closed the connection while {doing}")
                if step == API_VERSIONS and (speaks := _foreign_protocol(data)):
                    raise self.mismatch(step, f"answered {doing} in {speaks}", _HINTS[speaks])
                responses = self.parser.receive_bytes(data)
                if responses:
                    return responses[0][1]
        except TimeoutError:
            raise _timeout(self.address, doing, step) from None
        except ConnectionError as error:
            raise self.mismatch(step, f"reset the connection while {doing} ({error.strerror})") from None
        except kafka_errors.KafkaError as error:
            raise self.mismatch(step, f"answered {doing} with something else than Kafka ({error})") from None

    def mismatch(self, step: int, what_happened: str, hint: str | None = None) -> ProbeFailure:
        if hint is None and step == API_VERSIONS and self.protocol in {"PLAINTEXT", "SASL_PLAINTEXT"}:
            hint = "an SSL or SASL_SSL listener closes on a request without TLS"
        elif hint is None and step == METADATA and self.protocol == "PLAINTEXT":
            hint = (
                "the listener expects SASL authentication (SASL_PLAINTEXT or SASL_SSL), or is not a broker's"
            )
        return ProbeFailure(
            f"protocol mismatch: {self.address} {what_happened}"
            + (f": {hint}" if hint else "")
            + f" (STREAMREC_KAFKA_SECURITY_PROTOCOL is {self.protocol})",
            EXIT_PROTOCOL,
            step,
        )

    def api_versions(self) -> dict[int, int]:
        """API key -> the broker's highest version. Version 0: every broker since 0.10 answers it."""
        response = self.request(ApiVersionsRequest(version=0), API_VERSIONS, "asking for API versions")
        if response.error_code:
            raise ProbeFailure(
                f"{self.address} refused ApiVersions: {kafka_errors.for_code(response.error_code).__name__}",
                EXIT_PROTOCOL,
                API_VERSIONS,
            )
        return {api.api_key: api.max_version for api in response.api_keys}

    def authenticate(self, settings: Settings, host: str, versions: dict[int, int]) -> None:
        mechanism_name = settings.kafka.sasl_mechanism
        who = f"user {settings.kafka.sasl_username!r} via SASL/{mechanism_name} at {self.address}"
        handshake = self.request(
            SaslHandshakeRequest(version=1, mechanism=mechanism_name), SASL, "starting SASL"
        )
        error = kafka_errors.for_code(handshake.error_code)
        if error is kafka_errors.IllegalSaslStateError:
            raise ProbeFailure(
                f"protocol mismatch: {self.address} refused to start SASL: it is not a SASL listener "
                f"(STREAMREC_KAFKA_SECURITY_PROTOCOL is {self.protocol})",
                EXIT_PROTOCOL,
                SASL,
            )
        if error is not kafka_errors.NoError:
            enabled = ", ".join(handshake.mechanisms) or "none"
            raise ProbeFailure(
                f"authentication failed for {who}: the listener offers {enabled} "
                "(see STREAMREC_KAFKA_SASL_MECHANISM)",
                EXIT_AUTHENTICATION,
                SASL,
            )
        # Only the credentials: given the security protocol, kafka-python's mechanisms log a warning
        # about SASL_PLAINTEXT, which would add a line to the one the probe promises.
        mechanism = get_sasl_mechanism(mechanism_name)(
            host=host,
            sasl_mechanism=mechanism_name,
            sasl_plain_username=settings.kafka.sasl_username,
            sasl_plain_password=settings.kafka.sasl_password,
        )
        version = min(versions.get(SaslAuthenticateRequest.API_KEY, 0), SaslAuthenticateRequest.max_version)
        while not mechanism.is_done():
            response = self.request(
                SaslAuthenticateRequest(version=version, auth_bytes=mechanism.auth_bytes()),
                SASL,
                f"authenticating {who}",
            )
            if response.error_code:
                raise ProbeFailure(
                    f"authentication failed for {who}: {response.error_message}", EXIT_AUTHENTICATION, SASL
                )
            mechanism.receive(response.auth_bytes)
        if not mechanism.is_authenticated():
            raise ProbeFailure(f"authentication failed for {who}", EXIT_AUTHENTICATION, SASL)

    def metadata(self, versions: dict[int, int]) -> None:
        version = min(versions.get(MetadataRequest.API_KEY, 0), MetadataRequest.max_version)
        request = MetadataRequest(
            version=version,
            topics=MetadataRequest.NO_TOPICS,
            allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
        self.request(request, METADATA, "asking for metadata")
