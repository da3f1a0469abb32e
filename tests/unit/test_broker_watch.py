"""Readiness counts Kafka as gone only once it has not answered for longer than the grace period."""

from streamer.worker.broker_watch import BrokerWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_kafka_counts_as_connected_until_it_has_been_silent_longer_than_the_grace_period():
    clock = Clock()
    watch = BrokerWatch(grace_s=10, clock=clock)
    assert watch.connected()  # not probing yet: readiness waits for table recovery anyway
    watch.answered()
    clock.now += 10
    assert watch.connected()
    clock.now += 0.1
    assert not watch.connected()
    watch.answered()
    assert watch.connected()
