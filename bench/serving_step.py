"""Tensor cost of serving: µs per event of ``model.step`` + the exact top-K, by batch size, one thread.

Seeded, untrained GRU4Rec models of the rsc15 shape (hidden 100; serving cost does not depend on the
weights) on the rsc15-100k catalog size (2,933 items) and a 50,000-item catalog. Time is the thread's
CPU time and each figure the best of ``--repeats`` timings, so other jobs on the shared cores inflate
it as little as possible.

Run: ``.venv/bin/python -m bench.serving_step [--seconds 0.3] [--repeats 5]``
"""

import argparse
import time

import torch

from models.model import GRU4Rec, ModelConfig
from models.scoring import exact_top_k

CATALOGS = (2_933, 50_000)
BATCHES = (1, 16, 64, 256)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=0.3, help="CPU s per timing (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure (default: %(default)s)")
    parser.add_argument("--k", type=int, default=20, help="list length (default: %(default)s)")
    return parser.parse_args(argv)


def microseconds_per_event(model: GRU4Rec, batch: int, k: int, seconds: float) -> float:
    """CPU time of ``step`` + ``top_k`` on ``batch`` random rows, for about ``seconds``."""
    g = torch.Generator().manual_seed(batch)
    hidden = torch.randn(batch, *model.state_shape, generator=g) * 0.5
    items = torch.randint(model.n_items, (batch,), generator=g)
    types = torch.zeros(batch, dtype=torch.long)
    rounds = 0
    started = time.thread_time()
    while (elapsed := time.thread_time() - started) < seconds:
        exact_top_k(model, model.step(hidden, items, types), k)
        rounds += 1
    return elapsed / (rounds * batch) * 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # as the worker runs it
    print(f"µs per event of step + top_k({args.k}), best of {args.repeats} x {args.seconds} CPU s")
    print("items    " + "".join(f"{f'batch {b}':>11}" for b in BATCHES))
    for n_items in CATALOGS:
        model = GRU4Rec(ModelConfig(n_items=n_items, hidden=100), torch.Generator().manual_seed(7)).eval()
        figures = [
            min(microseconds_per_event(model, batch, args.k, args.seconds) for _ in range(args.repeats))
            for batch in BATCHES
        ]
        print(f"{n_items:<9}" + "".join(f"{f:>11.1f}" for f in figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
