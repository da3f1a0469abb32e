"""Fixtures shared by every test.

A broker is started only when a test asks for ``kafka_bootstrap``, so unit tests never need one.
"""

import os
import re
import secrets
from collections.abc import Callable, Iterator

import pytest

# Kafka 4.1 in a container, so both broker options reject the same old protocol versions.
KAFKA_IMAGE = "confluentinc/cp-kafka:8.1.0"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker shared by the session.

    In order of preference: ``$KAFKA_BOOTSTRAP_SERVERS`` (e.g. after ``eval "$(streamrec kafka start)"``),
    a testcontainers broker if a Docker engine answers, else a local java broker
    (``streamer.tools.kafka_local``).
    """
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
    elif _docker_answers():
        yield from _kafka_container()
    else:
        from streamer.tools.kafka_local import LocalBroker

        with LocalBroker(num_partitions=1) as broker:
            yield broker.bootstrap_servers


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("clicks")`` -> ``"clicks-roundtrip-3f9a1c2e"``: topic and group names that no other
    test, and no earlier run against the same broker, uses."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_")).strip("-")[:60]
    return lambda prefix: f"{prefix}-{test}-{secrets.token_hex(4)}"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon, a timeout: all mean "no Docker"
        return False


def _kafka_container() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    for topic in ("TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
        container.with_env(f"KAFKA_{topic}_REPLICATION_FACTOR", "1").with_env(f"KAFKA_{topic}_MIN_ISR", "1")
    with container:
        yield container.get_bootstrap_server()
