"""Live quality: did the user's next event pick an item of the list it was served, and at which rank.

Each state keeps the items of its last list and the model version that ranked them (``popularity``
for a popularity list). When the user's next event continues the session, the list scores a
prediction for that version: a hit at rank r adds 1 and 1/r, a miss adds nothing. Hit rate@K and
MRR@K are then ``hits / predictions`` and ``reciprocal_rank / predictions`` in PromQL, the same
protocol as the offline evaluator (:mod:`models.evaluate`: a session's first event predicts nothing)
except that an item the model does not know counts as a miss here, where offline drops it.
"""

from dataclasses import dataclass, field

from streamer.worker.metrics import ONLINE_HITS, ONLINE_PREDICTIONS, ONLINE_RECIPROCAL_RANK
from streamer.worker.state import UserState


@dataclass
class ListOutcomes:
    """Predictions, hits and the reciprocal-rank sum per model version, for one micro-batch."""

    predictions: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    reciprocal_rank: dict[str, float] = field(default_factory=dict)

    def observe(self, state: UserState, item: str) -> None:
        """Score the list ``state`` was last served against the item of its next event."""
        if not state.last_list:
            return
        version = state.last_list_version
        self.predictions[version] = self.predictions.get(version, 0) + 1
        if item in state.last_list:
            self.hits[version] = self.hits.get(version, 0) + 1
            rank = state.last_list.index(item) + 1
            self.reciprocal_rank[version] = self.reciprocal_rank.get(version, 0.0) + 1.0 / rank

    def publish(self) -> None:
        for version, n in self.predictions.items():
            ONLINE_PREDICTIONS.labels(version).inc(n)
            # Every version that predicted has its series, so hit rate is 0, not undefined, without hits.
            ONLINE_HITS.labels(version).inc(self.hits.get(version, 0))
            ONLINE_RECIPROCAL_RANK.labels(version).inc(self.reciprocal_rank.get(version, 0.0))
