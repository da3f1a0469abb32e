"""A real Apache Kafka broker for development and tests, run from Maven Central jars with plain java.

``streamrec kafka start|stop|restart|status|fetch`` drives it from the shell; tests use ``LocalBroker``
through the ``kafka_bootstrap`` fixture in ``tests/conftest.py``.
"""

from streamer.tools.kafka_local.broker import (
    BrokerInfo,
    BrokerStartError,
    LocalBroker,
    NoBrokerState,
    find_running,
    stop_running,
)
from streamer.tools.kafka_local.jars import KAFKA_VERSION, KafkaSetupError, ensure_kafka_jars

__all__ = [
    "KAFKA_VERSION",
    "BrokerInfo",
    "BrokerStartError",
    "KafkaSetupError",
    "LocalBroker",
    "NoBrokerState",
    "ensure_kafka_jars",
    "find_running",
    "stop_running",
]
