"""The one place where a worker is put together: settings in, a ready Faust app with its topics,
state store, model and catalog feeds, guards, agents and web pages out. Nothing is built at import time.

``streamrec worker`` runs :func:`worker_from_env`; ``faust -A streamer.app worker`` imports
:mod:`streamer.app`, which does the same.
"""

import sys

import faiss
import torch

from streamer.common.settings import ConfigError, Settings
from streamer.worker.agents import register_agents
from streamer.worker.api import register_api
from streamer.worker.batches import BatchProcessor
from streamer.worker.catalog import CatalogFeed
from streamer.worker.engine import ServingContext
from streamer.worker.faust_app import create_app
from streamer.worker.model_feed import ModelFeed
from streamer.worker.outbox import KafkaOutbox
from streamer.worker.parts import Worker
from streamer.worker.policy import serving_policy
from streamer.worker.popularity import StreamPopularity
from streamer.worker.routing import Router
from streamer.worker.store.rocksdb import RocksDBStateStore
from streamer.worker.topics import declare_topics
from streamer.worker.web import register_pages


def build_worker(settings: Settings) -> Worker:
    # Per-batch tensor work is small: one thread is several times faster than two on a busy 2-core
    # machine, and leaves the other core to Kafka I/O and RocksDB.
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)  # the approximate scorer's searches, on this (the event loop's) thread
    app = create_app(settings)
    topics = declare_topics(app, settings)
    app.topics.add(topics.events)  # subscribed for the router; no stream reads it
    states = RocksDBStateStore(app, settings)
    catalog = CatalogFeed(settings)
    policy = serving_policy(settings)
    context = ServingContext(catalog.catalog, StreamPopularity(policy.popularity_half_life_s))
    models = ModelFeed(settings, context)
    router = app.event_router = Router(app, settings, app.offset_guard, topics.dead_letters)
    batches = BatchProcessor(settings, states, models.holder, KafkaOutbox(app, topics))
    worker = Worker(settings, app, topics, states, models, app.offset_guard, router, batches, catalog)
    register_agents(worker)
    register_pages(worker)
    register_api(worker)
    return worker


def worker_from_env() -> Worker:
    """The worker the environment configures; a bad setting exits with one line naming it."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"streamrec: configuration error: {exc}")
    return build_worker(settings)
