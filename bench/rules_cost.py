"""CPU cost of the business rules on the hot path: µs per event of ``Recommender.apply`` (step,
rules, top-K, list encoding) with the rules off, with 10% of the catalog unavailable, and with every
rule on, one thread, micro-batches of ``--batch`` events from ``--users`` users with histories.

Seeded, untrained GRU4Rec models of the rsc15 shape (hidden 100; the cost does not depend on the
weights). Time is the thread's CPU time, each figure the best of ``--repeats`` timings, so other jobs
on the shared cores inflate it as little as possible.

Run: ``.venv/bin/python -m bench.rules_cost [--items 2933 50000] [--repeats 5]``
"""

import argparse
import dataclasses
import random
import time

import torch

from models.artifact import ModelArtifact
from models.model import GRU4Rec, ModelConfig
from schemas.events import Event, EventType
from streamer.worker.engine import Recommender, ServingContext
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.state import UserState


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[2_933, 50_000], help="catalog sizes")
    parser.add_argument(
        "--batch", type=int, default=256, help="events per micro-batch (default: %(default)s)"
    )
    parser.add_argument(
        "--users", type=int, default=2_000, help="users with a history (default: %(default)s)"
    )
    parser.add_argument(
        "--batches", type=int, default=20, help="micro-batches per timing (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure (default: %(default)s)")
    return parser.parse_args(argv)


def artifact(n_items: int) -> ModelArtifact:
    torch.manual_seed(0)
    model = GRU4Rec(ModelConfig(n_items=n_items, hidden=100)).eval()
    ids = [str(i) for i in range(n_items)]
    return ModelArtifact(model, ids, {i: n for n, i in enumerate(ids)}, "bench", {}, {}, "bench", "0" * 64)


def workload(n_items: int, args: argparse.Namespace) -> list[list[ParsedEvent]]:
    """Micro-batches of clicks (a buy in ten) by users who each bought and browsed before."""
    rng = random.Random(1)
    batches, offset = [], 0
    for _ in range(args.batches):
        batch = []
        for _ in range(args.batch):
            user = f"u{rng.randrange(args.users)}"
            kind = EventType.BUY if rng.random() < 0.1 else EventType.CLICK
            event = Event(f"e{offset}", user, str(rng.randrange(n_items)), 1e9 + offset, kind, "s")
            batch.append(ParsedEvent(event, InputRecord("click", 0, offset, None, b"")))
            offset += 1
        batches.append(batch)
    return batches


def histories(recommender: Recommender, n_items: int, users: int) -> dict[str, UserState]:
    """Each user 20 recent items and 10 purchases, in the current session."""
    rng = random.Random(2)
    states = {}
    for n in range(users):
        items = [str(rng.randrange(n_items)) for _ in range(20)]
        [hidden] = recommender.reencode_many([(items, [0] * 20)])
        states[f"u{n}"] = UserState(
            hidden,
            recommender.version,
            items,
            [0] * 20,
            1e9,
            "s",
            bought=items[:10],
            bought_at=[1e9] * 10,
        )
    return states


def microseconds_per_event(recommender: Recommender, batches, states, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        for batch in batches:
            recommender.apply(batch, {e.event.user_id: states[e.event.user_id] for e in batch})
        best = min(best, time.thread_time() - started)
    return best / sum(map(len, batches)) * 1e6


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    off = ServingPolicy()
    every_rule = dataclasses.replace(
        off, exclude_current_item=True, exclude_session_items=True, exclude_bought_s=86400.0
    )
    print(f"{'items':>8} {'rules':<34} {'µs/event':>9}")
    for n_items in args.items:
        art = artifact(n_items)
        batches = workload(n_items, args)
        for name, policy, unavailable in [
            ("off", off, 0.0),
            ("10% of the items unavailable", off, 0.1),
            ("all rules + 10% unavailable", every_rule, 0.1),
        ]:
            context = ServingContext.standalone(policy)
            for item in random.Random(3).sample(art.item_ids, int(unavailable * n_items)):
                context.catalog.apply(item.encode(), b'{"available": false}')
            recommender = Recommender(art, policy, context)
            states = histories(recommender, n_items, args.users)
            cost = microseconds_per_event(recommender, batches, states, args.repeats)
            print(f"{n_items:>8} {name:<34} {cost:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
