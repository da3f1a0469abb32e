"""CPU µs per event of the message codec on the worker's hot path: parsing and validating a typical
click event, encoding its 20-item list as the worker does (a wave of 256 lists through
``ListEncoder``), and a user state's encoding and decoding.

Run: ``.venv/bin/python bench/schemas_codec.py``. Figures before and after msgspec are in
bench/README.md.
"""

import os
import time
import timeit

import numpy as np
import torch

from schemas.events import Event
from streamer.worker.list_encoding import ListEncoder
from streamer.worker.records import InputRecord, ParsedEvent
from streamer.worker.state import UserState

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


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    scores, top = torch.randn(WAVE, CATALOG, generator=generator).topk(TOP_K)
    event = Event.from_bytes(CLICK, "click", now=NOW)
    parsed = [
        ParsedEvent(event, InputRecord("click", n % 4, 10_000 + n, b"u-42", CLICK)) for n in range(WAVE)
    ]
    encoder = ListEncoder([str(214536500 + n) for n in range(CATALOG)], "20261122T073800Z-3f2a1c9e")

    parse = microseconds(lambda: Event.from_bytes(CLICK, "click", now=NOW))
    encode = microseconds(lambda: encoder.encode_wave(parsed, top, scores, NOW + 0.5), per_call=WAVE)
    state = typical_state()
    rows = [
        ("parse + validate a click event (Event.from_bytes)", parse),
        ("encode its 20-item list (ListEncoder, a wave of 256)", encode),
        ("  parse + validate + encode, per event", parse + encode),
        (
            f"user state encode + decode ({len(state.to_bytes())} B)",
            microseconds(lambda: UserState.from_bytes(state.to_bytes())),
        ),
    ]
    print(f"load {os.getloadavg()[0]:.2f}")
    for label, us in rows:
        print(f"{label:<56} {us:8.2f} µs CPU")


if __name__ == "__main__":
    main()
