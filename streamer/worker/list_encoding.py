"""Lists as bytes through the message contract's own encoder (:func:`schemas.recommendations.encode_list`):
the bytes ``Recommendation.to_bytes()`` writes."""

from itertools import compress

import numpy as np
import torch

from schemas.recommendations import SCORE_DECIMALS, RankedItem, Recommendation, encode_list
from streamer.worker.records import ParsedEvent

Ranked = tuple[list[str], list[float]]  # one list: item ids best first, and their scores


def ranked_rows(item_ids: np.ndarray, top: torch.Tensor, scores: torch.Tensor) -> list[Ranked]:
    """Rows of a scorer's ``top`` item indices and ``scores`` as lists, rounded as the contract says;
    a row's trailing -inf entries (the scorer's mark for "nothing left to rank") are dropped."""
    # A float32 times 1e6 is exact in float64, so numpy's rint(x * 1e6) / 1e6 is what round(x, 6)
    # gives; done for the whole wave at once.
    rounded = np.round(scores.double().numpy(), SCORE_DECIMALS)
    names = item_ids[top.numpy()].tolist()
    values = rounded.tolist()
    ranked = rounded != -np.inf
    if not ranked.all():
        keep = ranked.tolist()
        return [
            (list(compress(row, kept)), list(compress(value, kept)))
            for row, value, kept in zip(names, values, keep, strict=True)
        ]
    return list(zip(names, values, strict=True))


class ListEncoder:
    def __init__(self, version: str) -> None:
        self._version = version

    def encode(
        self, events: list[ParsedEvent], rows: list[Ranked], bases: list[str], produced_at: float
    ) -> list[bytes]:
        """The list of each event from its ranked row; ``bases`` says what ranked each row."""
        return [
            encode_list(
                Recommendation(
                    parsed.event.user_id,
                    tuple(map(RankedItem, names, scores)),
                    self._version,
                    parsed.event.event_id,
                    parsed.event.event_time,
                    produced_at,
                    parsed.record.position,
                    basis,
                )
            )
            for parsed, (names, scores), basis in zip(events, rows, bases, strict=True)
        ]
