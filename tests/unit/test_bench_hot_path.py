"""The hot-path shortcuts the streaming benchmark led to give exactly what the plain code gives."""

import math

import numpy as np
import pytest
import torch

from models.artifact import ModelArtifact
from models.model import GRU4Rec, ModelConfig
from schemas.events import Event, EventType
from schemas.recommendations import RankedItem, Recommendation, SourcePosition
from streamer.worker.engine import Recommender
from streamer.worker.list_encoding import ListEncoder, ranked_rows
from streamer.worker.policy import ServingPolicy
from streamer.worker.records import InputRecord, ParsedEvent

ODD_IDS = ["plain", 'quo"te', "back\\slash", "new\nline", "tab\t", "é-ü", "日本", "🙂", "\x01ctl", "\u2028"]


def artifact(item_ids: list[str]) -> ModelArtifact:
    model = GRU4Rec(ModelConfig(n_items=len(item_ids), hidden=8), generator=torch.Generator().manual_seed(3))
    model.eval()
    return ModelArtifact(
        model=model,
        item_ids=item_ids,
        item_index={item: i for i, item in enumerate(item_ids)},
        version="v-1",
        config={},
        metrics={},
        data_fingerprint="test",
        checksum="0" * 64,
    )


def test_engine_lists_are_encoded_as_recommendation_to_bytes_encodes_them():
    item_ids = ODD_IDS + [str(214536500 + i) for i in range(40)]
    recommender = Recommender(artifact(item_ids), ServingPolicy(top_k=len(item_ids)))
    events = []
    for n in range(60):
        user = ["u", 'q"u', "ü-user", "🙂"][n % 4]
        event = Event(
            f"e-{n}", user, item_ids[n % len(item_ids)], 1.7e9 + n / 7, EventType(n % 3), f"s{n % 4}"
        )
        events.append(ParsedEvent(event, InputRecord(["click", "b\\uy"][n % 2], n % 3, n, None, b"")))
    result = recommender.apply(events, {})
    assert len(result.lists) == 60
    assert [user for user, _ in result.lists] == [p.event.user_id for p in events]
    assert [value for _, value in result.lists] == [rec.to_bytes() for rec in result.recommendations()]


def expected_list(parsed: ParsedEvent, items: list[str], scores: list[float], produced_at: float) -> bytes:
    event, record = parsed.event, parsed.record
    return Recommendation(
        user_id=event.user_id,
        items=tuple(map(RankedItem, items, scores)),
        model_version="v",
        event_id=event.event_id,
        event_time=event.event_time,
        produced_at=produced_at,
        source=SourcePosition(record.topic, record.partition, record.offset),
    ).to_bytes()


@pytest.mark.parametrize(
    "score", [0.0, -0.0, 1.5, -3.25e-7, 1e-40, 1e22, 123456.7890123, math.inf, -math.inf, math.nan]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("event_time", [1.7e9, 1700000000, 1.5])
def test_any_number_is_written_as_json_dumps_writes_it(score, dtype, event_time):
    event = Event("e", "u", "a", event_time, EventType.CLICK, "s")
    parsed = ParsedEvent(event, InputRecord("click", 0, 2**40, None, b""))
    scores = torch.tensor([[score, 2.0 / 3.0]], dtype=dtype)
    rows = ranked_rows(np.array(["a", 'b"'], dtype=object), torch.tensor([[0, 1]]), scores)
    [encoded] = ListEncoder("v").encode([parsed], rows, ["model"], 1763797080.1)
    listed = [(item, s) for item, s in zip(["a", 'b"'], scores[0].tolist(), strict=True) if s != -math.inf]
    assert encoded == expected_list(
        parsed, [item for item, _ in listed], [s for _, s in listed], 1763797080.1
    )


def test_wave_rounding_of_float32_scores_is_pythons_round_to_6_places():
    generator = torch.Generator().manual_seed(5)
    magnitudes = 10.0 ** torch.randint(-8, 9, (4000, 1), generator=generator)
    scores = (torch.randn(4000, 3, generator=generator) * magnitudes).float()
    event = Event("e", "u", "a", 1.7e9, EventType.CLICK, "s")
    parsed = [ParsedEvent(event, InputRecord("click", 0, n, None, b"")) for n in range(4000)]
    top = torch.tensor([[0, 1, 2]]).expand(4000, 3)
    rows = ranked_rows(np.array(["a", "b", "c"], dtype=object), top, scores)
    lists = ListEncoder("v").encode(parsed, rows, ["model"] * 4000, 1.0)
    expected = [
        expected_list(p, ["a", "b", "c"], row, 1.0) for p, row in zip(parsed, scores.tolist(), strict=True)
    ]
    assert lists == expected


def test_batched_reencoding_matches_encoding_each_history_alone():
    item_ids = [f"i{n}" for n in range(30)]
    art = artifact(item_ids)
    recommender = Recommender(art, ServingPolicy())
    histories = [
        (["i1", "i2", "i3"], [0, 1, 0]),
        ([], []),
        (["gone", "i4"], [0, 2]),  # unknown items are skipped
        (["gone"], [0]),
        ([f"i{n % 30}" for n in range(17)], [n % 3 for n in range(17)]),
        (["i9"], [1]),
    ]
    together = recommender.reencode_many(histories)
    for (items, types), hidden in zip(histories, together, strict=True):
        known = [(art.item_index[i], t) for i, t in zip(items, types, strict=True) if i in art.item_index]
        if known:
            expected = art.model.encode(
                torch.tensor([i for i, _ in known]), torch.tensor([t for _, t in known])
            )
        else:
            expected = torch.zeros(art.model.state_shape)
        assert hidden.dtype == np.float32 and hidden.shape == art.model.state_shape
        np.testing.assert_allclose(hidden, expected.numpy(), atol=1e-6, rtol=0)
