"""Faust's Kafka consumer, handing fetched records to the streams a fetch at a time, and committing
only what the agents completed.

Faust's ``Consumer._drain_messages`` (faust-streaming 0.15) delivers every record inside
``wait_first(deliver(record), suspend_flow.wait())``: two tasks, an ``asyncio.wait`` and a
cancellation per record, about 50 µs of event-loop work each. This loop is Faust's, record for
record (read offsets, gaps, commit-every), except that one ``wait_first`` covers all the records of
a fetch: ~10% less worker CPU per event when draining a backlog (bench/README.md). A rebalance
(``suspend_flow``) still cancels delivery at once, as in Faust; records fetched but not delivered
then are fetched again after the seek-back in :mod:`streamer.worker.offsets`, or after the new owner
seeks to the committed offset. Unlike Faust, a record below the last one delivered is delivered
again, not dropped: that is the re-read after such a seek-back (the agents skip what they applied).

Commits follow :class:`streamer.worker.offsets.OffsetGuard` instead of Faust's acknowledgements and gaps,
which can pass offsets that were never applied (see that module).
"""

import asyncio
from collections.abc import AsyncIterator, Iterator

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service

YIELD_EVERY = 100  # records delivered between two trips through the event loop, as in Faust


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Reads committed records only: events of a transaction that its producer aborted never reach
    the agents (Faust reads uncommitted records unless it runs exactly-once transactions itself)."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # what AIOKafkaConsumer.start() builds its fetcher with
        return consumer

    async def committed_offsets(self) -> dict[TP, int | None]:
        """The group's committed offset of every assigned partition (None: nothing committed yet),
        without moving the consumer."""
        return await self.call_thread(self._committed_offsets)

    async def _committed_offsets(self) -> dict[TP, int | None]:
        consumer = self._ensure_consumer()
        return {TP(tp.topic, tp.partition): await consumer.committed(tp) for tp in consumer.assignment()}


class FetchDeliveringConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _filter_tps_with_pending_acks(self, topics: object = None) -> Iterator[TP]:
        # What may be committed is what the guard says, not what was acknowledged to Faust.
        guard = self.app.offset_guard
        return (
            tp
            for tp in self.assignment()
            if (topics is None or tp in topics or tp.topic in topics)
            and guard.committable((tp.topic, tp.partition)) is not None
        )

    def _new_offset(self, tp: TP) -> int | None:
        # Faust's acknowledgement lists only grow when nothing reads them.
        self._acked.pop(tp, None)
        self._acked_index.pop(tp, None)
        return self.app.offset_guard.committable((tp.topic, tp.partition))

    async def perform_seek(self) -> None:
        """Every assigned partition is read again from its committed offset (from its first offset
        if the group committed none). The guard learns those offsets before the seek, so that a
        record it held back before then was fetched before the seek, which delivers it again."""
        committed = await self._thread.committed_offsets()
        uncommitted = [tp for tp, offset in committed.items() if offset is None]
        first = await self.earliest_offsets(*uncommitted) if uncommitted else {}
        for tp, offset in committed.items():
            self.app.offset_guard.start((tp.topic, tp.partition), first[tp] if offset is None else offset)
        await super().perform_seek()

    async def _drain_messages(self, fetcher: Service) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany can return at once, again and again: let others run
                if not self.should_stop:
                    await self.wait_first(self._deliver(records), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Consumer shutting down for user cancel.")
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, records: AsyncIterator[tuple[TP, Message]]) -> None:
        read_offset = self._read_offset
        router = self.app.event_router
        routed: list[Message] = []
        since_yield = 0
        async for tp, message in records:
            since_yield += 1
            if since_yield > YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            if message.topic in router.topics:
                routed.append(message)
            else:
                await self.callback(message)
            read_offset[tp] = message.offset
        if routed:
            await router.submit(routed)


class Transport(faust_aiokafka.Transport):
    Consumer = FetchDeliveringConsumer
