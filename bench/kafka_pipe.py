"""Reference (b) of the streaming benchmark: a bare Kafka pipe, run as its own process.

A plain aiokafka consumer reads the click and buy topics in batches (the worker's batch size and
wait), and for every event produces one message of a recommendation list's size to the output
topic, keyed like the event; it waits for Kafka's acknowledgement of a batch before reading the
next, as the worker does. No parsing, no state, no model. It prints ``ready`` once it is positioned
at the end of its input.

Run: ``python -m bench.kafka_pipe BOOTSTRAP CLICK BUY OUT --size 1100``
"""

import argparse
import asyncio
import json

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def payload(topic: str, partition: int, offset: int, size: int) -> bytes:
    """A list-sized message that names its source like a recommendation list does."""
    source = json.dumps({"topic": topic, "partition": partition, "offset": offset}, separators=(",", ":"))
    head = '{"model_version":"kafka-pipe","pad":"'
    tail = f'","source":{source}}}'
    return (head + "x" * max(0, size - len(head) - len(tail)) + tail).encode()


async def pipe(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(t, p) for t in args.inputs for p in range(args.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        print("ready", flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=args.within_ms, max_records=args.batch_max)
            pending = []
            for tp, records in batches.items():
                for r in records:
                    value = payload(tp.topic, tp.partition, r.offset, args.size)
                    pending.append(await producer.send(args.output, value, r.key))
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bootstrap")
    parser.add_argument("inputs", nargs=2, metavar="INPUT", help="the click and buy topics")
    parser.add_argument("output")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each input topic")
    parser.add_argument("--size", type=int, default=1100, help="bytes per produced message")
    parser.add_argument("--batch-max", type=int, default=256)
    parser.add_argument("--within-ms", type=int, default=5)
    asyncio.run(pipe(parser.parse_args()))


if __name__ == "__main__":
    main()
