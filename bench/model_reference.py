"""Reference (a) of the streaming benchmark: the bare model, no Kafka.

The same interleaved events the streaming runs replay are parsed once, then applied in micro-batches
of the worker's batch size with :meth:`streamer.worker.engine.Recommender.apply` (batched GRU step, top-K
over the whole catalog, list building; user states kept in a dict, no codec, no RocksDB). Beside it,
the tensor work alone: ``model.step`` + ``model.top_k`` on batches of the same size. Torch runs with
the worker's thread count (one, see ``streamer/worker/faust_app.py``).
"""

import time
from dataclasses import asdict, dataclass

import torch

from bench.stream_data import EventMessage
from models.artifact import ModelArtifact
from models.contract import Scorer
from streamer.worker.engine import Recommender
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord, ParsedEvent, parse_record


@dataclass(frozen=True)
class ModelReference:
    batch: int
    apply_events_per_s: float  # Recommender.apply, lists built
    tensor_events_per_s: float  # model.step + model.top_k only
    list_bytes: int  # size of one encoded list, for the Kafka pipe's messages

    def to_dict(self) -> dict:
        return asdict(self)


def parse_all(messages: list[EventMessage]) -> list[ParsedEvent]:
    now = time.time()
    parsed = []
    for offset, message in enumerate(messages):
        record = InputRecord(message.kind, 0, offset, message.key, message.value)
        outcome = parse_record(record, message.kind, now, 3600.0)
        if isinstance(outcome, ParsedEvent):
            parsed.append(outcome)
    return parsed


def measure_model(
    artifact: ModelArtifact, messages: list[EventMessage], batch: int, seconds: float, threads: int = 1
) -> ModelReference:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        parsed = parse_all(messages)
        recommender = Recommender(artifact, ServingPolicy())
        apply_rate, list_bytes = _apply_rate(recommender, parsed, batch, seconds)
        tensor_rate = _tensor_rate(artifact, recommender.scorer, parsed, batch, seconds)
    finally:
        torch.set_num_threads(previous)
    return ModelReference(batch, apply_rate, tensor_rate, list_bytes)


def _apply_rate(
    recommender: Recommender, parsed: list[ParsedEvent], batch: int, seconds: float
) -> tuple[float, int]:
    states: dict = {}
    done = 0
    list_bytes = 0
    started = time.perf_counter()
    for start in range(0, len(parsed), batch):
        chunk = parsed[start : start + batch]
        result = recommender.apply(chunk, {p.event.user_id: states.get(p.event.user_id) for p in chunk})
        states.update(result.states)
        done += len(chunk)
        if not list_bytes and result.lists:
            list_bytes = len(result.lists[0][1])
        if time.perf_counter() - started > seconds:
            break
    return done / (time.perf_counter() - started), list_bytes


def _tensor_rate(
    artifact: ModelArtifact, scorer: Scorer, parsed: list[ParsedEvent], batch: int, seconds: float
) -> float:
    """Events/s of the model step and the serving scorer's top-20 alone (the scorer the worker picks
    for this catalog: exact, or approximate on a large one)."""
    model = artifact.model
    index = artifact.item_index
    items = torch.tensor([index[p.event.item_id] for p in parsed])
    types = torch.tensor([int(p.event.event_type) for p in parsed])
    hidden = model.zero_state(batch)
    done = 0
    started = time.perf_counter()
    for start in range(0, len(parsed) - batch + 1, batch):
        hidden = model.step(hidden, items[start : start + batch], types[start : start + batch])
        scorer.top_k(model.query(hidden), 20)
        done += batch
        if time.perf_counter() - started > seconds:
            break
    return done / (time.perf_counter() - started)
