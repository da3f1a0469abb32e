"""Approximate scoring for large catalogs: candidates from a faiss inverted-file index, re-ranked exactly.

An item's score is ``q · v_i + b_i``: the inner product of ``[q, 1]`` with ``x_i = [v_i, b_i]``, which
the index searches directly (inner-product metric). Its lists are built for the two ways a catalog's
best items are found:

* **by direction**: items are grouped by the direction of ``v_i`` (spherical k-means), and a row
  searches the ``nprobe`` lists whose mean vector ``c`` and best bias ``b_max`` score highest
  (``q · c + b_max``): a trained model's lists follow its query's direction;
* **by popularity**: the ``head`` items of highest bias form one more list that every row searches:
  where the bias outweighs the direction (as on the synthetic catalogs, whose lists are mostly the
  most popular items), the best items are in it whatever the query.

Measured (bench/README.md): the earlier index, an L2 k-means over the MIPS-to-L2 reduction
``[x_i, sqrt(M - |x_i|²)]``, lost the RetailRocket model's low-norm items (Recall@20 0.5715 at nprobe
16 against 0.5951 exact: they sit together near the reduction's pole, in lists whose centroids point
nowhere); a plain inner-product IVF found them but its k-means collapsed on the synthetic catalogs'
bias (overlap@20 0.10 at 200k items). Directions plus the head list hold both.

The nearest candidates are then scored exactly (the same vectors and bias as the exact scorer), a
row's exclusions are set to -inf, and the best ``k`` are cut. Unavailable items never become
candidates: faiss skips them while it scans its lists (an ID selector over a bitmap of the
available items), so a sold-out tenth of the catalog does not thin the candidates out. A row whose
candidates cannot fill ``k`` (tiny catalogs, many exclusions) is ranked by the exact scorer, under
the same exclusions and the same unavailable items.

Like the exact scorer, the lists a row searches are chosen on blocks of exactly ``SERVING_BLOCK``
rows, so a row's list does not depend on its micro-batch; the scan of those lists, per row, runs on
the real rows only.
"""

import math
import time
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from torch import Tensor

from models.contract import ItemTable
from models.scoring import ExactScorer, PerUnavailableSet, latest_seen, seen_bonuses, unlisted_where_no_score_
from models.serving_blocks import blocks, padded

# The head list's key in the coarse quantizer: its inner product with any query ``[q, 1]`` is this
# bias, far above any list's ``q · c + b_max``, so every row searches it (one of its nprobe + 1 lists).
ALWAYS_SEARCHED = 1e30
BUILD_CHUNK = 65_536


@dataclass(frozen=True)
class AnnParams:
    candidates: int = 64  # nearest items per row scored exactly (at least k + exclusions)
    nprobe: int = 16  # direction lists searched per row, besides the head list
    nlist: int = 0  # direction lists of the index; 0: about 2 * sqrt(items)
    head: int = 0  # items of highest bias in the list every row searches; 0: about 2 * sqrt(items)
    # One thread: a worker builds while its event loop serves on the other core of two (1M items:
    # 20 s on one thread, load 4.7).
    build_threads: int = 1


class IndexMismatch(ValueError):
    """A shipped index does not fit the model's item table."""


def index_rows(vectors: Tensor, bias: Tensor) -> np.ndarray:
    """Item rows ``[v_i, b_i]`` as faiss wants them: float32, C order."""
    rows = torch.cat([vectors, bias.unsqueeze(1)], 1).detach()
    return np.ascontiguousarray(rows.numpy(), dtype=np.float32)


def build_index(items: ItemTable, params: AnnParams) -> faiss.IndexIVFFlat:
    """An inner-product IVF-flat index of ``nlist`` direction lists and one head list (the last),
    k-means trained on a sample of 64 items per list, on ``params.build_threads`` OpenMP threads
    (faiss's thread count belongs to the calling thread: it is restored after)."""
    previous_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(params.build_threads)
    try:
        return _build_index(items, params)
    finally:
        faiss.omp_set_num_threads(previous_threads)


def _build_index(items: ItemTable, params: AnnParams) -> faiss.IndexIVFFlat:
    n = items.n_items
    nlist = params.nlist or max(1, min(n // 39, round(2 * math.sqrt(n))))
    head = min(n, params.head or round(2 * math.sqrt(n)))
    vectors, bias = items.vectors.detach(), items.bias.detach()
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(1234))[: 64 * nlist]
    kmeans = faiss.Kmeans(vectors.shape[1], nlist, niter=20, seed=1234, spherical=True)
    kmeans.train(_directions(vectors[sample]))
    # Chunk by chunk, so that a worker building a million-item index beside the model it serves
    # holds no full-catalog copies (directions, float32 rows: 0.4 GB each).
    chunks = [slice(start, start + BUILD_CHUNK) for start in range(0, n, BUILD_CHUNK)]
    lists = torch.cat(
        [torch.from_numpy(kmeans.index.search(_directions(vectors[c]), 1)[1][:, 0]) for c in chunks]
    )
    lists[bias.argsort(descending=True)[:head]] = nlist
    quantizer = faiss.IndexFlatIP(vectors.shape[1] + 1)
    quantizer.add(_list_keys(vectors, bias, lists, nlist))
    index = faiss.IndexIVFFlat(quantizer, vectors.shape[1] + 1, nlist + 1, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    for chunk in chunks:
        rows = index_rows(vectors[chunk], bias[chunk])
        ids = np.arange(chunk.start, chunk.start + len(rows), dtype=np.int64)
        assignment = np.ascontiguousarray(lists[chunk].numpy(), dtype=np.int64)
        index.add_core(len(rows), faiss.swig_ptr(rows), faiss.swig_ptr(ids), faiss.swig_ptr(assignment))
    return index


def _directions(vectors: Tensor) -> np.ndarray:
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return np.ascontiguousarray(unit.numpy(), dtype=np.float32)


def _list_keys(vectors: Tensor, bias: Tensor, lists: Tensor, nlist: int) -> np.ndarray:
    """Each direction list's ``[mean v, max b]`` (its probe score for ``[q, 1]`` is ``q · c + b_max``),
    then the head list's ``[0, ALWAYS_SEARCHED]``."""
    sizes = torch.bincount(lists, minlength=nlist + 1).clamp(min=1)
    means = torch.zeros(nlist + 1, vectors.shape[1]).index_add_(0, lists, vectors) / sizes.unsqueeze(1)
    best_bias = torch.full((nlist + 1,), -ALWAYS_SEARCHED).scatter_reduce_(0, lists, bias, "amax")
    keys = torch.cat([means, best_bias.unsqueeze(1)], 1)
    keys[nlist] = 0.0
    keys[nlist, -1] = ALWAYS_SEARCHED
    return np.ascontiguousarray(keys.numpy(), dtype=np.float32)


class AnnScorer:
    def __init__(self, items: ItemTable, index: faiss.Index, params: AnnParams) -> None:
        if not isinstance(index, faiss.IndexIVFFlat):
            raise IndexMismatch(f"the index is a {type(index).__name__}, not an IndexIVFFlat")
        if index.ntotal != items.n_items or index.d != items.vectors.shape[1] + 1:
            raise IndexMismatch(
                f"the index holds {index.ntotal} vectors of {index.d} dimensions, the model "
                f"{items.n_items} items of {items.vectors.shape[1] + 1}"
            )
        self.items = items
        self.n_items = items.n_items
        self.index = index
        self.params = params
        self._probes = min(params.nprobe + 1, index.nlist)  # + the head list
        self._list_keys = torch.from_numpy(index.quantizer.reconstruct_n(0, index.nlist))
        self._search = faiss.SearchParametersIVF(nprobe=self._probes)
        self._search_available = PerUnavailableSet(self._search_without)
        self._exact = ExactScorer(items)
        self.build_seconds = 0.0

    @classmethod
    def build(cls, items: ItemTable, params: AnnParams) -> "AnnScorer":
        started = time.perf_counter()
        scorer = cls(items, build_index(items, params), params)
        scorer.build_seconds = time.perf_counter() - started
        return scorer

    @torch.inference_mode()
    def top_k(
        self,
        queries: Tensor,
        k: int,
        exclude: Tensor | None = None,
        unavailable: Tensor | None = None,
        seen: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        k = min(k, self.n_items)
        if exclude is not None and exclude.dim() == 1:
            exclude = exclude.unsqueeze(1)
        excluded_per_row = 0 if exclude is None or not len(exclude) else int((exclude >= 0).sum(1).max())
        # Excluded and seen items found by faiss are dropped from its candidates (seen ones come back
        # appended, with their bonus): enough are asked for that k others are left.
        seen_per_row = 0 if seen is None or not seen.numel() else int((seen >= 0).sum(1).max())
        if not (self.items.seen_bonus and seen_per_row):
            seen, seen_per_row = None, 0
        n = min(self.n_items, max(self.params.candidates, k + excluded_per_row + seen_per_row))
        search = self._search if unavailable is None else self._search_available(unavailable)[0]
        rows = padded(queries)
        query_rows = torch.cat([rows, rows.new_ones(len(rows), 1)], 1)
        top_scores = queries.new_empty(len(queries), k)
        top_items = torch.empty(len(queries), k, dtype=torch.long)
        for block in blocks(len(queries)):
            real = len(queries[block])
            candidates = self._candidates(query_rows[block], real, n, search)
            real_rows = rows[block][:real]
            scores = self._rescore(real_rows, candidates)
            if seen is not None:
                candidates, scores = self._add_seen(real_rows, candidates, scores, seen[block], unavailable)
            if excluded_per_row:
                _exclude_candidates_(scores, candidates, exclude[block])
            top_scores[block], at = torch.topk(scores, k, dim=1)
            top_items[block] = candidates.gather(1, at)
        short = torch.nonzero(~torch.isfinite(top_scores[:, -1])).squeeze(1)
        if len(short):  # too few candidates survived: rank these rows exactly
            fallback = None if exclude is None else exclude[short]
            top_scores[short], top_items[short] = self._exact.top_k(
                queries[short], k, fallback, unavailable, None if seen is None else seen[short]
            )
        return top_scores, unlisted_where_no_score_(top_items, top_scores)

    def _candidates(self, block: Tensor, real: int, n: int, search: faiss.SearchParametersIVF) -> Tensor:
        """The ``n`` best items of the lists each of the block's first ``real`` rows probes. The lists
        are chosen by one product over the whole padded block (a fixed shape: the same bits for a
        row in any batch; faiss would switch from its own kernel to BLAS at 20 rows); only the real
        rows scan them: unlike the exact scorer's product, whose cost is reading the item matrix once
        per block, a scan costs per row: scanning for the padding too made a lone event cost 32 scans."""
        probe_scores, probed = torch.topk(block @ self._list_keys.T, self._probes, dim=1)
        # The C++ call: faiss's Python wrapper of search_preassigned takes no search parameters (and
        # so no selector). faiss reads these arrays through raw pointers: they are locals, alive.
        queries = np.ascontiguousarray(block[:real].numpy())
        lists = np.ascontiguousarray(probed[:real].numpy())
        list_scores = np.ascontiguousarray(probe_scores[:real].numpy())
        distances = np.empty((real, n), dtype=np.float32)
        found = np.empty((real, n), dtype=np.int64)
        self.index.search_preassigned_c(
            real,
            faiss.swig_ptr(queries),
            n,
            faiss.swig_ptr(lists),
            faiss.swig_ptr(list_scores),
            faiss.swig_ptr(distances),
            faiss.swig_ptr(found),
            False,
            search,
        )
        return torch.from_numpy(found)

    def _search_without(self, unavailable: Tensor) -> tuple[faiss.SearchParametersIVF, object]:
        """Search parameters that skip ``unavailable``, and what they point into (faiss keeps raw
        pointers: the bitmap and the selector must live as long as the parameters)."""
        available = np.ones(self.n_items, dtype=bool)
        available[unavailable.numpy()] = False
        bitmap = np.packbits(available, bitorder="little")
        selector = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bitmap))
        return faiss.SearchParametersIVF(nprobe=self._probes, sel=selector), (bitmap, selector)

    def _add_seen(
        self, queries: Tensor, candidates: Tensor, scores: Tensor, seen: Tensor, unavailable: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The candidates with each row's seen items appended, scored with the bonus (the index does
        not know it, so a seen item may rank well without being found); faiss's copy of a seen item
        is dropped so that no item is listed twice."""
        own, ages = latest_seen(seen)
        _exclude_candidates_(scores, candidates, own)
        bonuses = seen_bonuses(own, ages, self.items.seen_bonus, self.items.seen_decay)
        own_scores = self._rescore(queries, own) + bonuses.to(scores.dtype)
        if unavailable is not None:  # the index's selector never saw these
            own_scores.masked_fill_(torch.isin(own, unavailable), float("-inf"))
        return torch.cat([candidates, own], 1), torch.cat([scores, own_scores], 1)

    def _rescore(self, queries: Tensor, candidates: Tensor) -> Tensor:
        """Exact scores of each row's candidates (-inf where faiss found fewer than asked)."""
        valid = candidates >= 0
        safe = candidates.clamp(min=0)
        vectors = self.items.vectors[safe]  # [rows, n, d]
        scores = torch.bmm(vectors, queries.unsqueeze(2)).squeeze(2) + self.items.bias[safe]
        return scores.masked_fill_(~valid, float("-inf"))


def _exclude_candidates_(scores: Tensor, candidates: Tensor, exclude: Tensor) -> None:
    """-inf for every candidate that is one of its row's excluded items (a search in each row's sorted
    exclusions: with 200 exclusions and 220 candidates per row, 18 µs per row against 110 for comparing
    all pairs)."""
    ordered = exclude.sort(1).values
    at = torch.searchsorted(ordered, candidates).clamp_(max=ordered.shape[1] - 1)
    hit = (ordered.gather(1, at) == candidates) & (candidates >= 0)
    scores.masked_fill_(hit, float("-inf"))
