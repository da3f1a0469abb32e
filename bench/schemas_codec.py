"""µs per event of the message codec on the hot path: parsing and validating a typical click event,
and encoding its 20-item recommendation list (a wave of 256 lists, as the worker encodes them).

It measures whichever ``schemas`` and ``streamer`` are importable, so the same script gives the
figures before and after a change::

    .venv/bin/python bench/schemas_codec.py                       # the installed tree
    mkdir /tmp/before && git archive <rev> schemas streamer models | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python bench/schemas_codec.py

Rows: ``Event.from_bytes``; ``Recommendation.to_bytes`` (the general path); the hand-written
``ListEncoder`` of ``streamer/engine.py``; where ``schemas`` has ``encode_list`` (msgspec), the same
wave through it, as the streamer is to call it; and a user state's encoding and decoding, the
JSON-header layout of ``streamer/state.py`` and, where ``schemas`` has it, the MessagePack layout.
"""

import importlib.util
import os
import time
import timeit

import numpy as np
import torch

import schemas.recommendations
from schemas.events import Event
from schemas.recommendations import RankedItem, Recommendation, SourcePosition
from streamer.engine import ListEncoder
from streamer.records import InputRecord, ParsedEvent
from streamer.state import UserState

CLICK = (
    b'{"event_id": "e-1", "user_id": "u-42", "item_id": "214536502", "event_time": 1396860669.277,'
    b' "session_id": "s-7", "event_type": "click"}'
)
NOW = 1396860669.277
WAVE, TOP_K, CATALOG = 256, 20, 2933


def microseconds(run, per_call: int = 1) -> float:
    """Best of 5 timings of ``run`` (about 0.05 s each), in CPU µs per item (``per_call`` items per
    call). CPU time, not wall time: other jobs on the machine barely change it."""
    timer = timeit.Timer(run, timer=time.process_time)
    calls, _ = timer.autorange()  # at least 0.2 s of calls
    calls = max(1, calls // 4)
    return min(timer.repeat(5, calls)) / calls / per_call * 1e6


def wave_inputs():
    generator = torch.Generator().manual_seed(0)
    scores, top = torch.randn(WAVE, CATALOG, generator=generator).topk(TOP_K)
    event = Event.from_bytes(CLICK, "click", now=NOW)
    parsed = [
        ParsedEvent(event, InputRecord("click", n % 4, 10_000 + n, b"u-42", CLICK)) for n in range(WAVE)
    ]
    return parsed, top, scores


def msgspec_wave(encode_list, item_ids: list[str], version: str):
    """The wave encoder proposed for ``streamer/engine.py`` (see the schemas issue's closing note)."""
    from schemas.recommendations import SCORE_DECIMALS

    ids = np.array(item_ids, dtype=object)

    def encode_wave(events, top, scores, produced_at):
        names = ids[top.numpy()].tolist()
        rounded = np.round(scores.double().numpy(), SCORE_DECIMALS).tolist()
        return [
            encode_list(
                Recommendation(
                    parsed.event.user_id,
                    tuple(map(RankedItem, row_names, row_scores)),
                    version,
                    parsed.event.event_id,
                    parsed.event.event_time,
                    produced_at,
                    parsed.record.position,
                )
            )
            for parsed, row_names, row_scores in zip(events, names, rounded, strict=True)
        ]

    return encode_wave


def typical_state() -> UserState:
    return UserState(
        hidden=np.random.default_rng(0).random((1, 100), dtype=np.float32),
        model_version="20261122T073800Z-3f2a1c9e",
        recent_items=[str(214536500 + n) for n in range(20)],
        recent_types=[0] * 20,
        last_event_time=NOW,
        session_id="s-7",
        applied={"click/0": 123456, "buy/1": 789},
        events_seen=20,
        recent_events=bytes(range(256)),
    )


def msgpack_state_round_trip(state: UserState):
    """A state through the MessagePack layout, with the numpy conversions the streamer would do."""
    from schemas.user_states import StoredUserState, decode_user_state, encode_user_state

    def round_trip():
        data = encode_user_state(
            StoredUserState(
                state.model_version,
                state.hidden.shape,
                np.ascontiguousarray(state.hidden, dtype=np.float32).tobytes(),
                state.recent_items,
                state.recent_types,
                state.last_event_time,
                state.session_id,
                state.applied,
                state.events_seen,
                state.recent_events,
            )
        )
        stored = decode_user_state(data)
        hidden = np.frombuffer(stored.hidden, dtype=np.float32).reshape(stored.hidden_shape).copy()
        return data, hidden

    return round_trip


def main() -> None:
    torch.set_num_threads(1)
    parsed, top, scores = wave_inputs()
    item_ids = [str(214536500 + n) for n in range(CATALOG)]
    rec = Recommendation(
        "u-42",
        tuple(RankedItem(item_ids[i], s) for i, s in zip(top[0].tolist(), scores[0].tolist(), strict=True)),
        "20261122T073800Z-3f2a1c9e",
        "e-1",
        NOW,
        NOW + 0.5,
        SourcePosition("click", 0, 1234),
    )
    parse = microseconds(lambda: Event.from_bytes(CLICK, "click", now=NOW))
    rows = [
        ("parse + validate a click event (Event.from_bytes)", parse),
        ("encode a 20-item list (Recommendation.to_bytes)", microseconds(rec.to_bytes)),
    ]
    hand_written = ListEncoder(item_ids, "20261122T073800Z-3f2a1c9e")
    hot = [("encode a 20-item list, hot path: ListEncoder (hand-written)", hand_written.encode_wave)]
    if hasattr(schemas.recommendations, "encode_list"):
        wave = msgspec_wave(schemas.recommendations.encode_list, item_ids, "20261122T073800Z-3f2a1c9e")
        hot.append(("encode a 20-item list, hot path: msgspec encode_list", wave))
    for label, encode_wave in hot:
        encode = microseconds(lambda e=encode_wave: e(parsed, top, scores, NOW + 0.5), per_call=WAVE)
        rows += [(label, encode), ("  parse + validate + encode, per event", parse + encode)]

    state = typical_state()
    stored = state.to_bytes()
    rows.append(
        (
            f"user state encode + decode, JSON header layout ({len(stored)} B)",
            microseconds(lambda: UserState.from_bytes(state.to_bytes())),
        )
    )
    if importlib.util.find_spec("schemas.user_states"):
        round_trip = msgpack_state_round_trip(state)
        size = len(round_trip()[0])
        rows.append((f"user state encode + decode, MessagePack layout ({size} B)", microseconds(round_trip)))

    print(f"schemas from {os.path.dirname(schemas.recommendations.__file__)}, load {os.getloadavg()[0]:.2f}")
    for label, us in rows:
        print(f"{label:<66} {us:8.2f} µs CPU")


if __name__ == "__main__":
    main()
