"""Approximate scoring for large catalogs: candidates from a faiss inverted-file index, re-ranked exactly.

An item's score is ``q · v_i + b_i``: the inner product of ``[q, 1]`` with ``x_i = [v_i, b_i]``. The
index searches by L2 distance instead, over ``[x_i, sqrt(M - |x_i|²)]`` (M the largest ``|x_i|²``)
with queries ``[q, 1, 0]``: the distance is then ``|q|² + 1 + M - 2 score``, so the nearest items are
the best scored (the MIPS-to-L2 reduction). An inner-product IVF index partitions items badly when
their norms differ, as they do with a popularity bias: on a 200k-item clustered catalog, nprobe 32,
overlap@20 with the exact lists was 0.20 with it and 0.99 with the reduction
(bench/catalog_benchmark.py). The nearest candidates are then scored exactly (the same vectors and
bias as the exact scorer), a row's exclusions are set to -inf, and the best ``k`` are cut. Unavailable
items never become candidates: faiss skips them while it scans its lists (an ID selector over a
bitmap of the available items), so a sold-out tenth of the catalog does not thin the candidates out.
A row whose candidates cannot fill ``k`` (tiny catalogs, many exclusions) is ranked by the exact
scorer, under the same exclusions and the same unavailable items.

Like the exact scorer, every search runs on blocks of exactly ``SERVING_BLOCK`` rows (faiss picks its
distance kernel by the number of queries), so a row's list does not depend on its micro-batch.
"""

import math
import time
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from torch import Tensor

from models.contract import ItemTable
from models.scoring import ExactScorer, PerUnavailableSet, unlisted_where_no_score_
from models.serving_blocks import blocks, padded


@dataclass(frozen=True)
class AnnParams:
    candidates: int = 64  # nearest items per row scored exactly (at least k + exclusions)
    nprobe: int = 16  # inverted lists searched per row
    nlist: int = 0  # inverted lists of the index; 0: about 2 * sqrt(items)


class IndexMismatch(ValueError):
    """A shipped index does not fit the model's item table."""


def index_rows(items: ItemTable) -> np.ndarray:
    """Item rows ``[v_i, b_i, sqrt(M - |x_i|²)]`` as faiss wants them: float32, C order."""
    x = torch.cat([items.vectors, items.bias.unsqueeze(1)], 1).detach().double()
    norms = (x * x).sum(1)
    rows = torch.cat([x, (norms.max() - norms).clamp(min=0).sqrt().unsqueeze(1)], 1)
    return np.ascontiguousarray(rows.numpy(), dtype=np.float32)


def build_index(items: ItemTable, params: AnnParams) -> faiss.Index:
    """An IVF-flat L2 index over the catalog's index rows, k-means trained on a sample of at most 64
    items per list. 2 * sqrt(items) lists rather than 4 * sqrt: a 1M-item build took 20-27 s instead
    of 129 s (fewer centroids to train and assign), at the same overlap (bench/README.md)."""
    rows = index_rows(items)
    nlist = params.nlist or max(1, min(len(rows) // 39, round(2 * math.sqrt(len(rows)))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(rows.shape[1]), rows.shape[1], nlist, faiss.METRIC_L2)
    index.cp.max_points_per_centroid = 64
    index.cp.seed = 1234
    index.train(rows)
    index.add(rows)
    return index


class AnnScorer:
    def __init__(self, items: ItemTable, index: faiss.Index, params: AnnParams) -> None:
        if index.ntotal != items.n_items or index.d != items.vectors.shape[1] + 2:
            raise IndexMismatch(
                f"the index holds {index.ntotal} vectors of {index.d} dimensions, the model "
                f"{items.n_items} items of {items.vectors.shape[1] + 2}"
            )
        self.items = items
        self.n_items = items.n_items
        self.index = index
        self.params = params
        self._search = faiss.SearchParametersIVF(nprobe=params.nprobe)
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
        self, queries: Tensor, k: int, exclude: Tensor | None = None, unavailable: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        k = min(k, self.n_items)
        if exclude is not None and exclude.dim() == 1:
            exclude = exclude.unsqueeze(1)
        excluded_per_row = 0 if exclude is None or not len(exclude) else int((exclude >= 0).sum(1).max())
        n = min(self.n_items, max(self.params.candidates, k + excluded_per_row))
        search = self._search if unavailable is None else self._search_available(unavailable)[0]
        rows = padded(queries)
        query_rows = np.ascontiguousarray(
            torch.cat([rows, rows.new_ones(len(rows), 1), rows.new_zeros(len(rows), 1)], 1).numpy()
        )
        top_scores = queries.new_empty(len(queries), k)
        top_items = torch.empty(len(queries), k, dtype=torch.long)
        for block in blocks(len(queries)):
            _, found = self.index.search(query_rows[block], n, params=search)
            candidates = torch.from_numpy(found)[: len(queries[block])]
            scores = self._rescore(rows[block][: len(candidates)], candidates)
            if excluded_per_row:
                _exclude_candidates_(scores, candidates, exclude[block])
            top_scores[block], at = torch.topk(scores, k, dim=1)
            top_items[block] = candidates.gather(1, at)
        short = torch.nonzero(~torch.isfinite(top_scores[:, -1])).squeeze(1)
        if len(short):  # too few candidates survived: rank these rows exactly
            fallback = None if exclude is None else exclude[short]
            top_scores[short], top_items[short] = self._exact.top_k(queries[short], k, fallback, unavailable)
        return top_scores, unlisted_where_no_score_(top_items, top_scores)

    def _search_without(self, unavailable: Tensor) -> tuple[faiss.SearchParametersIVF, object]:
        """Search parameters that skip ``unavailable``, and what they point into (faiss keeps raw
        pointers: the bitmap and the selector must live as long as the parameters)."""
        available = np.ones(self.n_items, dtype=bool)
        available[unavailable.numpy()] = False
        bitmap = np.packbits(available, bitorder="little")
        selector = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bitmap))
        return faiss.SearchParametersIVF(nprobe=self._search.nprobe, sel=selector), (bitmap, selector)

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
