"""Connection settings for every Kafka client the project uses, from one place.

The Faust app, kafka-python (admin, replay, readers) and aiokafka (retrainer, benchmark) each
spell security options differently; these functions translate :class:`Settings` for each.
"""

import ssl
from typing import Any

import faust
from faust.types.auth import CredentialsT

from streamer.common.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka.security_protocol not in {"SSL", "SASL_SSL"}:
        return None
    return ssl.create_default_context(cafile=settings.kafka.ssl_cafile)


def faust_credentials(settings: Settings) -> CredentialsT | None:
    protocol = settings.kafka.security_protocol
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka.sasl_username,
            password=settings.kafka.sasl_password,
            mechanism=settings.kafka.sasl_mechanism,
            ssl_context=ssl_context(settings),
        )
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap_servers.split(","),
        "security_protocol": settings.kafka.security_protocol,
    }
    if settings.kafka.security_protocol.startswith("SASL_"):
        config |= {
            "sasl_mechanism": settings.kafka.sasl_mechanism,
            "sasl_plain_username": settings.kafka.sasl_username,
            "sasl_plain_password": settings.kafka.sasl_password,
        }
    if context := ssl_context(settings):
        config["ssl_context"] = context
    return config


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer and consumer."""
    config = kafka_python_config(settings)
    config["bootstrap_servers"] = settings.kafka.bootstrap_servers
    return config
