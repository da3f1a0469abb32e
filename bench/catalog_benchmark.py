"""Scoring large catalogs: the exact scorer against the approximate one (faiss IVF candidates,
re-ranked exactly), per catalog size, on one thread as the worker runs them.

Synthetic catalogs of 50k, 200k and 1M items with the serving model's shape (100 units): a seeded
GRU4Rec whose item vectors are clustered around topics with a Zipf-like popularity bias
(:func:`models.synthetic.cluster_item_vectors_`; trained embeddings look like that, random ones
have no neighbourhoods). Queries are the states after a few random events. Per catalog: index
build seconds, CPU µs per list of 20 at batches of 32 and 256, the same at batch 32 with masks (a
random tenth of the catalog unavailable, 200 exclusions per row), overlap@20 of the approximate
lists with the exact ones (plain and masked), and the process's peak RSS.

Run: ``.venv/bin/python -m bench.catalog_benchmark [--items 50000 200000 1000000]`` (or
``make bench-catalog``).
"""

import argparse
import os
import resource
import time

import faiss
import torch

from models.ann import AnnParams, AnnScorer
from models.model import GRU4Rec, ModelConfig
from models.scoring import ExactScorer
from models.synthetic import cluster_item_vectors_

K = 20
EXCLUDED_PER_ROW = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1024, help="states scored per figure")
    parser.add_argument("--candidates", type=int, default=AnnParams.candidates)
    parser.add_argument("--nprobe", type=int, default=AnnParams.nprobe)
    parser.add_argument("--nlist", type=int, default=AnnParams.nlist, help="index lists (0: the default)")
    parser.add_argument("--head", type=int, default=AnnParams.head, help="head-list items (0: the default)")
    return parser.parse_args(argv)


def states(model: GRU4Rec, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    hidden = model.zero_state(n)
    for _ in range(4):
        items = torch.randint(model.n_items, (n,), generator=g)
        hidden = model.step(hidden, items, torch.zeros(n, dtype=torch.long))
    return model.query(hidden)


def masks(n_items: int, n_rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """200 excluded items per row and a sorted tenth of the catalog unavailable."""
    g = torch.Generator().manual_seed(seed)
    exclude = torch.randint(n_items, (n_rows, EXCLUDED_PER_ROW), generator=g)
    unavailable = torch.randperm(n_items, generator=g)[: n_items // 10].sort().values
    return exclude, unavailable


def microseconds_per_list(scorer, queries: torch.Tensor, batch: int, exclude=None, unavailable=None) -> float:
    started = time.process_time()
    for start in range(0, len(queries), batch):
        rows = slice(start, start + batch)
        scorer.top_k(queries[rows], K, None if exclude is None else exclude[rows], unavailable)
    return (time.process_time() - started) / len(queries) * 1e6


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b, strict=True)) / a.numel()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    print(f"load {os.getloadavg()[0]:.2f}; CPU µs per list of {K}, one thread")
    header = (
        "items      build s  exact@32 exact@256   ann@32  ann@256  masked: exact@32 ann@32"
        "  overlap@20 masked  peak RSS"
    )
    print(header)
    for n_items in args.items:
        model = GRU4Rec(ModelConfig(n_items=n_items, hidden=100), torch.Generator().manual_seed(7)).eval()
        cluster_item_vectors_(model)
        model.requires_grad_(False)
        items = model.item_table()
        queries = states(model, args.queries, seed=n_items)
        exact = ExactScorer(items)
        started = time.perf_counter()
        params = AnnParams(candidates=args.candidates, nprobe=args.nprobe, nlist=args.nlist, head=args.head)
        ann = AnnScorer.build(items, params)
        build_s = time.perf_counter() - started
        figures = [microseconds_per_list(s, queries, b) for s in (exact, ann) for b in (32, 256)]
        exclude, unavailable = masks(n_items, len(queries), seed=n_items + 1)
        masked = [microseconds_per_list(s, queries, 32, exclude, unavailable) for s in (exact, ann)]
        same = overlap(ann.top_k(queries, K)[1], exact.top_k(queries, K)[1])
        same_masked = overlap(
            ann.top_k(queries, K, exclude, unavailable)[1], exact.top_k(queries, K, exclude, unavailable)[1]
        )
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(
            f"{n_items:<9} {build_s:8.1f} "
            + " ".join(f"{f:8.0f}" for f in figures)
            + f"  {masked[0]:15.0f} {masked[1]:6.0f}  {same:10.4f} {same_masked:6.4f}  {rss_gb:5.2f} GB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
