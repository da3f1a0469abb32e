"""Which scorer serves a catalog: exact below a size, approximate (faiss, :mod:`models.ann`) above.

CPU µs per list of 20, one thread, 100-unit model, clustered synthetic catalogs (`make bench-catalog`,
2-core machine under load 2-5): exact 310-470 / 1,100-1,500 / 7,800-11,100 at 50k / 200k / 1M items,
approximate 130-220 / 200-260 / 390-400 with overlap@20 1.00 on all three. On the trained RetailRocket
model (37k items) the approximate lists overlap the exact ones by 0.968 (Recall@20 0.5916 against
0.5951). Below 100k items the exact scorer costs under half a millisecond and its lists are exact,
so "auto" switches at 100k.
"""

from dataclasses import dataclass, field

import faiss

from models.ann import AnnParams, AnnScorer
from models.contract import ItemTable, Scorer
from models.scoring import ExactScorer

SCORERS = ("auto", "exact", "ann")


@dataclass(frozen=True)
class ScorerChoice:
    kind: str = "auto"  # one of SCORERS
    ann_from_items: int = 100_000  # "auto" picks the approximate scorer from this catalog size on
    ann: AnnParams = field(default_factory=AnnParams)

    def uses_ann(self, n_items: int) -> bool:
        return self.kind == "ann" or (self.kind == "auto" and n_items >= self.ann_from_items)


def build_scorer(items: ItemTable, choice: ScorerChoice, index: faiss.Index | None = None) -> Scorer:
    """The scorer ``choice`` asks for; an approximate one uses ``index`` (shipped with the artifact)
    or builds its own here (seconds for a million items: call it off the event loop)."""
    if not choice.uses_ann(items.n_items):
        return ExactScorer(items)
    if index is not None:
        return AnnScorer(items, index, choice.ann)
    return AnnScorer.build(items, choice.ann)
