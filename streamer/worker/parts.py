"""What a worker is made of, as :func:`streamer.worker.assembly.build_worker` wires it."""

from dataclasses import dataclass

from streamer.common.settings import Settings
from streamer.worker.batches import BatchProcessor
from streamer.worker.catalog import CatalogFeed
from streamer.worker.faust_app import StreamrecApp
from streamer.worker.model_feed import ModelFeed
from streamer.worker.offsets import OffsetGuard
from streamer.worker.routing import Router
from streamer.worker.store.rocksdb import RocksDBStateStore
from streamer.worker.topics import Topics


@dataclass(frozen=True)
class Worker:
    settings: Settings
    app: StreamrecApp
    topics: Topics
    states: RocksDBStateStore
    models: ModelFeed  # the first model at start, then every announced one
    offset_guard: OffsetGuard  # what the agent may apply, and what the consumer may commit
    router: Router  # input records -> the sequencing topic or dead letters
    batches: BatchProcessor  # one micro-batch of sequenced records -> lists and states
    catalog: CatalogFeed  # which items may be listed: the whole item-catalog topic at start, then followed
