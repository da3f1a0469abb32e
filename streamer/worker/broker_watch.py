"""Whether this worker can reach Kafka, for ``/readyz``.

Faust and aiokafka ride out a broker outage by retrying, so nothing in the worker fails that
readiness could look at, and their clients' connection state is private and, for the consumer, lives
in another thread. Instead the worker asks Kafka itself: once a second, one metadata request for no
topics (the smallest request every broker answers, as aiokafka's own bootstrap sends) over one
kept-open connection. Kafka counts as unreachable once no probe has been answered for
``STREAMREC_BROKER_GRACE_S``; a blip shorter than that leaves readiness alone.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from streamer.common.kafka_config import aiokafka_config
from streamer.common.settings import Settings

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0


class BrokerWatch:
    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self._clock = clock
        # None until probing starts, with Faust's tasks once table recovery (reading from Kafka) is
        # done; readiness waits for recovery anyway.
        self._last_answer: float | None = None

    def connected(self) -> bool:
        """False once Kafka has not answered for longer than the grace period."""
        return self._last_answer is None or self._clock() - self._last_answer <= self.grace_s

    def answered(self) -> None:
        self._last_answer = self._clock()

    async def run(self, settings: Settings) -> None:
        """Probe Kafka every :data:`PROBE_INTERVAL_S` for as long as the worker runs."""
        client = AIOKafkaClient(
            client_id="streamrec-broker-watch",
            # An answer later than the grace period is as good as none.
            request_timeout_ms=int(self.grace_s * 1000),
            **aiokafka_config(settings),
        )
        self.answered()  # recovery has just read from Kafka; the grace period runs from here
        try:
            while True:
                if await probe(client):
                    self.answered()
                await asyncio.sleep(PROBE_INTERVAL_S)  # the probe period, not a wait for a condition
        finally:
            await client.close()


async def probe(client: AIOKafkaClient) -> bool:
    """Whether a broker answers a metadata request; the client reconnects as needed."""
    try:
        if not client.cluster.brokers():
            await client.bootstrap()
        node = client.get_random_node()
        if node is None:
            return False
        await client.send(node, MetadataRequest([]))
    except (KafkaError, OSError) as exc:  # OSError covers TimeoutError
        log.debug("Kafka did not answer the probe: %r", exc)
        return False
    return True
