"""One load run: produce events at an offered rate, read the lists they trigger, pair them up.

The producer stamps each event with its own CreateTime (``timestamp_ms``); the list's Kafka
timestamp is the CreateTime the worker's producer gave it. Latency = list timestamp - event
timestamp, pairs matched by the list's ``source`` (topic, partition, offset), which the producer
learns from each send's acknowledgement. Both clocks are this machine's.
"""

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stream_data import EventMessage

Position = tuple[str, int, int]  # (topic, partition, offset)
# The event producers' batching delay: Kafka's own client default since 4.0 (KIP-1030). One request
# per event instead (linger 0) costs the broker and this process a third of a core more at 1,500/s,
# on the same two cores the system under test runs on. It counts in the latency: events are stamped
# when handed to the producer.
PRODUCER_LINGER_MS = 5
# (seconds after the start, what to do with the run's producer)
Action = tuple[float, Callable[[AIOKafkaProducer], Awaitable[None]]]


@dataclass
class Samples:
    """Raw outcome of one run; :mod:`bench.stream_stats` turns it into figures."""

    offered_rate: float | None  # None: unpaced
    sent: int = 0
    event_ms: list[int] = field(default_factory=list)  # per matched list: event CreateTime
    list_ms: list[int] = field(default_factory=list)  # per matched list: list CreateTime
    versions: list[str] = field(default_factory=list)  # per matched list: model version
    unmatched: int = 0  # lists whose source is not an event of this run (e.g. duplicates)
    duplicates: int = 0
    send_seconds: float = 0.0
    actions_ms: dict[str, int] = field(default_factory=dict)  # action name -> wall time done


@dataclass(frozen=True)
class RunSpec:
    bootstrap: str
    topics: dict[str, str]  # "click", "buy", "lists" -> topic name
    partitions: int  # of every topic
    rate: float | None  # events/s, None for as fast as possible
    timeout_s: float  # give up waiting for lists this long after the last send
    label: str = ""


def source_of(value: bytes) -> tuple[Position, str]:
    """(source position, model version) of a list, reading only the tail and one field."""
    start = value.rfind(b'"source":')
    source = json.loads(value[start + 9 : value.index(b"}", start) + 1])
    at = value.find(b'"model_version":"') + 17
    version = value[at : value.find(b'"', at)].decode()
    return (source["topic"], source["partition"], source["offset"]), version


async def run_load(
    spec: RunSpec, events: list[EventMessage], actions: Sequence[tuple[str, Action]] = ()
) -> Samples:
    """Produce ``events``, collect the lists they trigger until all arrived or ``spec.timeout_s``
    passed after the last send, and pair lists with events."""
    samples = Samples(spec.rate)
    received: dict[Position, tuple[int, str]] = {}
    with collector_paused():
        consumer = await _lists_consumer(spec)
        producer = AIOKafkaProducer(
            bootstrap_servers=spec.bootstrap, acks="all", linger_ms=PRODUCER_LINGER_MS
        )
        await producer.start()
        reader = asyncio.create_task(_read(consumer, received, samples))
        try:
            sent_at = await _produce(producer, spec, events, samples, actions)
            await _wait_for(reader, received, sent_at, spec)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await producer.stop()
            await consumer.stop()
    _pair(samples, sent_at, received)
    return samples


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's full garbage collections (90-190 ms once its heap holds a run's samples) would
    hold back events it has already stamped; it collects before and after a run instead."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _lists_consumer(spec: RunSpec) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=spec.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    tps = [TopicPartition(spec.topics["lists"], p) for p in range(spec.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)  # resolve "end" now, before any list of this run exists
    return consumer


async def _produce(
    producer: AIOKafkaProducer,
    spec: RunSpec,
    events: list[EventMessage],
    samples: Samples,
    actions: Sequence[tuple[str, Action]],
) -> dict[Position, int]:
    """Send ``events`` paced at ``spec.rate``; run each action when its time comes; return position ->
    event CreateTime for every acknowledged event."""
    pending: list[tuple[asyncio.Future, int]] = []
    todo = sorted(actions, key=lambda a: a[1][0])
    for kind in ("click", "buy"):  # the first send would otherwise wait for metadata after its stamp
        await producer.partitions_for(spec.topics[kind])
    start = time.monotonic()
    n = 0
    progress_at = start + 2.0
    while n < len(events):
        now = time.monotonic()
        due = len(events) if spec.rate is None else min(len(events), int((now - start) * spec.rate) + 1)
        while n < due:
            message = events[n]
            stamp = int(time.time() * 1000)
            future = await producer.send(
                spec.topics[message.kind], message.value, message.key, timestamp_ms=stamp
            )
            pending.append((future, stamp))
            n += 1
            if spec.rate is None and n % 500 == 0:
                await asyncio.sleep(0)  # let the reader run
        while todo and now - start >= todo[0][1][0]:
            name, (_, act) = todo.pop(0)
            await act(producer)
            samples.actions_ms[name] = int(time.time() * 1000)
        if now >= progress_at:
            progress_at += 2.0
            print(f"    {spec.label} sent {n}/{len(events)}", flush=True)
        if spec.rate is not None and n < len(events):
            await asyncio.sleep(max(0.0, start + n / spec.rate - time.monotonic()))
    samples.sent = n
    samples.send_seconds = time.monotonic() - start
    for name, (_, act) in todo:  # actions scheduled after the last event still happen
        await act(producer)
        samples.actions_ms[name] = int(time.time() * 1000)
    # One by one: a gather over every send would queue a callback per finished send at once.
    results = [await future for future, _ in pending]
    return {(r.topic, r.partition, r.offset): stamp for r, (_, stamp) in zip(results, pending, strict=True)}


async def _read(
    consumer: AIOKafkaConsumer, received: dict[Position, tuple[int, str]], samples: Samples
) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=5000)
        for records in batches.values():
            for record in records:
                position, version = source_of(record.value)
                if position in received:
                    samples.duplicates += 1
                received[position] = (record.timestamp, version)


async def _wait_for(
    reader: asyncio.Task,
    received: dict[Position, tuple[int, str]],
    sent_at: dict[Position, int],
    spec: RunSpec,
) -> None:
    """Until every sent event has its list, the reader failed, or ``spec.timeout_s`` passed."""
    deadline = time.monotonic() + spec.timeout_s
    progress_at = time.monotonic() + 2.0
    missing = len(sent_at)
    while missing and time.monotonic() < deadline and not reader.done():
        await asyncio.sleep(0.05)
        missing = sum(1 for position in sent_at if position not in received)
        if time.monotonic() >= progress_at:
            progress_at += 2.0
            print(f"    {spec.label} lists {len(sent_at) - missing}/{len(sent_at)}", flush=True)
    if reader.done():
        reader.result()  # re-raise what stopped it


def _pair(samples: Samples, sent_at: dict[Position, int], received: dict[Position, tuple[int, str]]) -> None:
    for position, (list_ms, version) in received.items():
        event_ms = sent_at.get(position)
        if event_ms is None:
            samples.unmatched += 1
            continue
        samples.event_ms.append(event_ms)
        samples.list_ms.append(list_ms)
        samples.versions.append(version)
