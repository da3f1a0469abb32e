"""Inputs of the streaming benchmark: model artifacts (served and swapped-in) and event workloads.

Workloads interleave many concurrent sessions, as a busy shop sees them: a pool of ``users`` open
sessions, each next event taken from a random open session (its events stay in order), a finished
session replaced by the next one. Every session is one user; user and event ids carry a run tag, so
each run's users start cold and lists can be told apart. Event bytes are encoded before a run so
producing costs no JSON work.
"""

import csv
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from models.artifact import load_artifact, save_artifact
from models.model import GRU4Rec, ModelConfig
from models.synthetic import cluster_item_vectors_, write_synthetic_sessions
from schemas.events import Event, EventType
from schemas.model_updates import ModelAnnouncement

Session = tuple[str, list[tuple[str, float]]]  # (session id, [(item id, time), ...])


@dataclass(frozen=True)
class Catalog:
    """One benchmark catalog: the served artifact and the sessions replayed as users."""

    name: str
    artifact: Path
    sessions: list[Session]
    n_items: int


@dataclass(frozen=True)
class EventMessage:
    kind: str  # "click" or "buy": which topic
    key: bytes
    value: bytes


def rsc15_catalog(data_dir: Path, cache: Path, progress: bool = True) -> Catalog:
    """The rsc15-100k catalog: a 1-epoch model trained on train_full (cached), test sessions as users."""
    artifact = cache / "rsc15"
    if not (artifact / "manifest.json").is_file():
        print(f"training the rsc15 model (1 epoch) -> {artifact}", flush=True)
        command = [sys.executable, "-m", "streamer.cli", "train", "--data", str(data_dir / "train_full.tsv")]
        command += ["--preset", "rsc15", "--epochs", "1", "--out", str(artifact)]
        subprocess.run(command + ([] if progress else ["--quiet"]), check=True)
    n_items = len(load_artifact(artifact).item_ids)
    return Catalog("rsc15-100k", artifact, read_sessions(data_dir / "test.tsv"), n_items)


def synthetic_catalog(cache: Path, n_items: int = 50_000, n_sessions: int = 20_000) -> Catalog:
    """A synthetic catalog of ``n_items`` items: a seeded, untrained GRU4Rec of the rsc15 shape whose item
    vectors cluster around topics (the exact scorer's cost does not depend on the weights; the
    approximate one's index needs the neighbourhoods trained embeddings have) and synthetic sessions
    over the same item ids."""
    artifact = synthetic_model(cache, n_items)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_sessions(Path(tmp) / "s.tsv", n_items=n_items, n_sessions=n_sessions, seed=3)
        sessions = read_sessions(path)
    return Catalog(f"synthetic-{n_items // 1000}k", artifact, sessions, n_items)


def synthetic_model(cache: Path, n_items: int) -> Path:
    """The synthetic catalog's model artifact (written once into ``cache``)."""
    artifact = cache / f"synthetic-clustered-{n_items}"
    if not (artifact / "manifest.json").is_file():
        print(f"writing a synthetic {n_items}-item model -> {artifact}", flush=True)
        model = GRU4Rec(ModelConfig(n_items=n_items, hidden=100), torch.Generator().manual_seed(7)).eval()
        cluster_item_vectors_(model)
        item_ids = [str(i) for i in range(n_items)]
        save_artifact(artifact, model, item_ids, {"synthetic": True}, "synthetic", {})
    return artifact


def read_sessions(path: Path) -> list[Session]:
    """Sessions of a SessionId/ItemId/Time TSV, each in time order, in order of first appearance."""
    sessions: dict[str, list[tuple[str, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            sessions.setdefault(row["SessionId"], []).append((row["ItemId"], float(row["Time"])))
    return [(sid, sorted(events, key=lambda e: e[1])) for sid, events in sessions.items()]


def interleave(
    sessions: list[Session], count: int, users: int, seed: int
) -> Iterator[tuple[str, str, float]]:
    """``count`` events (user suffix, item id, time) from a pool of ``users`` concurrently open sessions.
    The session list is cycled; each pass gets its own user suffix, so users never repeat."""
    rng = random.Random(seed)
    upcoming = ((f"{n // len(sessions)}-{sid}", events) for n, (sid, events) in _cycle(sessions))
    pool: list[list] = []  # [user, events, next position]
    produced = 0
    while produced < count:
        while len(pool) < users:
            user, events = next(upcoming)
            pool.append([user, events, 0])
        slot = rng.randrange(len(pool))
        user, events, position = pool[slot]
        item, time = events[position]
        yield user, item, time
        produced += 1
        if position + 1 == len(events):
            pool[slot] = pool[-1]
            pool.pop()
        else:
            pool[slot][2] = position + 1


def _cycle(sessions: list[Session]) -> Iterator[tuple[int, Session]]:
    n = 0
    while True:
        for session in sessions:
            yield n, session
            n += 1


def workload(
    catalog: Catalog, count: int, tag: str, users: int = 2000, buy_share: float = 0.03, seed: int = 0
) -> list[EventMessage]:
    """Encoded events for one run; about ``buy_share`` of them are buys (to the buy topic)."""
    rng = random.Random(seed + 1)
    messages = []
    for n, (user, item, time) in enumerate(interleave(catalog.sessions, count, users, seed)):
        kind = EventType.BUY if rng.random() < buy_share else EventType.CLICK
        user_id = f"{tag}-u{user}"
        event = Event(f"{tag}-{n}", user_id, item, time, kind, session_id=user_id)
        messages.append(EventMessage(kind.name.lower(), user_id.encode(), event.to_bytes()))
    return messages


def swap_artifact(source: Path, store: Path, name: str, seed: int) -> ModelAnnouncement:
    """Re-save ``source`` with slightly perturbed weights as ``store/name``: another model version to
    announce, of the same catalog and the same cost."""
    artifact = load_artifact(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in artifact.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 1e-3)
    version = save_artifact(store / name, artifact.model, artifact.item_ids, artifact.config, "swap", {})
    checksum = load_artifact(store / name).checksum
    return ModelAnnouncement(version=version, path=name, checksum=checksum, created_at=0.0)
