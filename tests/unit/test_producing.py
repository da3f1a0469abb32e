"""Lists are keyed records: they must land where any Kafka client would put the same key."""

import random

from aiokafka.partitioner import DefaultPartitioner

from streamer.worker.producing import KeyPartitioner


def test_key_partitioner_agrees_with_kafkas_default_partitioner():
    rng = random.Random(7)
    keys = [f"user-{n}".encode() for n in range(500)] + [
        rng.randbytes(rng.randrange(1, 40)) for _ in range(500)
    ]
    for partitions in ([0], [0, 1, 2, 3], list(range(12)), [0, 2, 5]):
        ours = KeyPartitioner(partitions)
        assert [ours(key) for key in keys] == [
            DefaultPartitioner()(key, partitions, partitions) for key in keys
        ]
