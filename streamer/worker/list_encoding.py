"""Lists as bytes straight from top-K rows: the hot path's JSON writer."""

import json
import math
from collections.abc import Callable
from json.encoder import encode_basestring

import numpy as np
import torch

from streamer.worker.records import ParsedEvent


class ListEncoder:
    """Lists as bytes, exactly as ``Recommendation.to_bytes()`` writes them (``json.dumps`` with compact
    separators, ``ensure_ascii=False``, scores rounded to 6 places), straight from a row of top-K
    indices and scores: no Recommendation or RankedItem objects on the hot path. The JSON of each
    item id is built once, on its first list."""

    def __init__(self, item_ids: list[str], version: str) -> None:
        self._item_ids = item_ids
        self._item_heads: list[str | None] = [None] * len(item_ids)
        self._version = encode_basestring(version)

    def encode_wave(
        self, events: list[ParsedEvent], top: torch.Tensor, scores: torch.Tensor, produced_at: float
    ) -> list[bytes]:
        """The list of each event from its row of ``top`` item indices and ``scores``."""
        if scores.dtype == torch.float32 and bool(torch.isfinite(scores).all()):
            # A float32 times 1e6 is exact in float64, so numpy's rint(x * 1e6) / 1e6 is what
            # round(x, 6) gives; done for the whole wave at once. Finite scores need no checks either.
            rounded = np.round(scores.double().numpy(), 6).tolist()
            number = repr
        else:
            rounded = [[round(score, 6) for score in row] for row in scores.tolist()]
            number = _number
        return [
            self._list(event, self._items(row_top, row_scores, number), produced_at)
            for event, row_top, row_scores in zip(events, top.tolist(), rounded, strict=True)
        ]

    def _items(self, top: list[int], scores: list[float], number: Callable[[float], str]) -> str:
        heads = self._item_heads
        parts = []
        for index, score in zip(top, scores, strict=True):
            head = heads[index]
            if head is None:
                head = heads[index] = '{"item_id":' + encode_basestring(self._item_ids[index]) + ',"score":'
            parts.append(head + number(score))
        return "},".join(parts) + "}" if parts else ""

    def _list(self, parsed: ParsedEvent, items: str, produced_at: float) -> bytes:
        event, record = parsed.event, parsed.record
        return (
            f'{{"user_id":{encode_basestring(event.user_id)},"items":[{items}],'
            f'"model_version":{self._version},'
            f'"event_id":{encode_basestring(event.event_id)},"event_time":{_number(event.event_time)},'
            f'"produced_at":{_number(produced_at)},"source":{{"topic":{encode_basestring(record.topic)},'
            f'"partition":{_number(record.partition)},"offset":{_number(record.offset)}}}}}'
        ).encode()


def _number(value: float | int) -> str:
    """A number as ``json.dumps`` writes it (its float repr, NaN and +-Infinity included)."""
    if value.__class__ is float:
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value.__class__ is int:
        return repr(value)
    return json.dumps(value)
