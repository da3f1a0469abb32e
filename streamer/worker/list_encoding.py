"""Lists as bytes straight from a wave's top-K rows, through the message contract's own encoder
(:func:`schemas.recommendations.encode_list`): the bytes ``Recommendation.to_bytes()`` writes."""

import numpy as np
import torch

from schemas.recommendations import SCORE_DECIMALS, RankedItem, Recommendation, encode_list
from streamer.worker.records import ParsedEvent


class ListEncoder:
    def __init__(self, item_ids: list[str], version: str) -> None:
        self._item_ids = np.array(item_ids, dtype=object)
        self._version = version

    def encode_wave(
        self, events: list[ParsedEvent], top: torch.Tensor, scores: torch.Tensor, produced_at: float
    ) -> list[bytes]:
        """The list of each event from its row of ``top`` item indices and ``scores``."""
        if scores.dtype == torch.float32 and bool(torch.isfinite(scores).all()):
            # A float32 times 1e6 is exact in float64, so numpy's rint(x * 1e6) / 1e6 is what
            # round(x, 6) gives; done for the whole wave at once.
            rounded = np.round(scores.double().numpy(), SCORE_DECIMALS).tolist()
        else:
            rounded = [[round(score, SCORE_DECIMALS) for score in row] for row in scores.tolist()]
        names = self._item_ids[top.numpy()].tolist()
        return [
            encode_list(
                Recommendation(
                    parsed.event.user_id,
                    tuple(map(RankedItem, row_names, row_scores)),
                    self._version,
                    parsed.event.event_id,
                    parsed.event.event_time,
                    produced_at,
                    parsed.record.position,
                )
            )
            for parsed, row_names, row_scores in zip(events, names, rounded, strict=True)
        ]
