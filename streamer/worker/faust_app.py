"""The Faust app class of a worker and its Faust configuration. The worker is assembled around it in
:func:`streamer.worker.assembly.build_worker`."""

import logging
import os
import threading
from typing import TYPE_CHECKING

import faust

from streamer.common.admin import ensure_worker_topics
from streamer.common.kafka_config import faust_credentials
from streamer.common.kafka_probe import require_kafka
from streamer.common.logs import install_repeat_limiter, logging_config
from streamer.common.settings import Settings
from streamer.worker.consumer import Transport
from streamer.worker.offsets import OffsetGuard

if TYPE_CHECKING:
    from streamer.worker.routing import Router


class StreamrecApp(faust.App):
    """A Faust app whose shutdown is bounded: Faust waits for the batch in flight and the producer
    without limit, but a pod's grace period ends. Past the deadline the process exits non-zero;
    that is safe, since user states record the offsets they applied. Its consumer hands records to
    the streams a fetch at a time (:mod:`streamer.worker.consumer`). Before a worker connects, its Kafka
    settings are probed (:mod:`streamer.common.kafka_probe`): a wrong address, protocol or password stops it
    with one line and its own exit code, and its topics are created and awaited in the broker's metadata
    (:func:`streamer.common.admin.ensure_worker_topics`). Repeated warnings and errors are rate-limited
    (:class:`streamer.common.logs.RepeatLimiter`)."""

    shutdown_timeout_s: float = 30.0
    offset_guard: OffsetGuard  # what the agents may apply, and what the consumer may commit
    # Takes the consumer's input records (set by build_worker). Not `router`: that is Faust's table
    # router, which web views use to find the worker holding a key.
    event_router: "Router"
    streamrec_settings: Settings | None = None

    def worker_init(self) -> None:
        # Both `streamrec worker` (app.main) and `faust -A streamer.app worker` call this first.
        if self.streamrec_settings is not None:
            require_kafka(self.streamrec_settings, "streamrec worker")
            changelogs = [table.changelog_topic.get_topic_name() for table in self.tables.values()]
            ensure_worker_topics(self.streamrec_settings, changelogs)
        super().worker_init()

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        # The Faust worker has set up logging by now (it starts the app after that).
        install_repeat_limiter()
        await super().on_first_start()

    async def on_stop(self) -> None:
        deadline = threading.Timer(self.shutdown_timeout_s, _exit_after_timeout, [self.shutdown_timeout_s])
        deadline.daemon = True
        deadline.start()
        await super().on_stop()


def _exit_after_timeout(timeout_s: float) -> None:
    logging.getLogger(__name__).error("shutdown took longer than %ss; exiting now", timeout_s)
    os._exit(70)


def create_app(settings: Settings) -> StreamrecApp:
    settings.worker.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = StreamrecApp(
        settings.worker.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")],
        store="rocksdb://",
        datadir=str(settings.worker.data_dir),
        broker_credentials=faust_credentials(settings),
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        table_standby_replicas=settings.worker.standby_replicas,
        consumer_group_instance_id=settings.worker.consumer_instance_id,
        broker_session_timeout=settings.worker.session_timeout_s,
        key_serializer="raw",
        value_serializer="raw",
        # A micro-batch sends its lists and changelog records as one record batch per partition
        # (streamer.worker.producing); Kafka's default 16 KiB would split a batch of ~1 KB lists into many.
        producer_max_batch_size=256 << 10,
        # A new deployment starts from the oldest retained event rather than skipping the backlog.
        consumer_auto_offset_reset="earliest",
        web_port=settings.worker.web_port,
        # Faust's default is the machine's host name; the assignor tells the group this URL.
        **({"web_host": settings.worker.web_host} if settings.worker.web_host else {}),
        web_in_thread=False,
        logging_config=logging_config(settings.log.format, settings.log.level),
    )
    app.shutdown_timeout_s = settings.worker.shutdown_timeout_s
    app.offset_guard = OffsetGuard()
    app.streamrec_settings = settings
    return app
