"""Which scorer serves a catalog: exact below a size, approximate (faiss, :mod:`models.ann`) above.

Measured on this 2-core machine, one thread, 100-unit model, µs per list of 20 (`make bench-catalog`):
the exact scorer's cost grows with the catalog, the approximate one's barely; the default threshold
is where the approximate scorer starts to be clearly cheaper at the same lists.
"""

from dataclasses import dataclass, field

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


def build_scorer(items: ItemTable, choice: ScorerChoice) -> Scorer:
    """The scorer ``choice`` asks for; an approximate one builds its index here (seconds for a
    million items: call it off the event loop)."""
    if choice.uses_ann(items.n_items):
        return AnnScorer.build(items, choice.ann)
    return ExactScorer(items)
