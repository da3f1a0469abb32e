"""Pure helpers of the streaming benchmark: statistics, verdicts, message parsing, workloads."""

import math

import numpy as np
import pytest

from bench import stream_stats as stats
from bench.kafka_pipe import payload
from bench.stream_data import Catalog, interleave, workload
from bench.stream_load import source_of
from bench.stream_report import format_report, targets
from schemas.events import Event
from schemas.recommendations import RankedItem, Recommendation, SourcePosition


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear_interpolation(q):
    values = list(np.random.default_rng(1).exponential(10.0, size=537))
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edge_cases():
    assert math.isnan(stats.percentile([], 50))
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summary_and_latencies():
    lat = stats.latencies([100, 200, 300, 400], [105, 260, 299, 420])
    assert lat == [5.0, 60.0, 0.0, 20.0]  # a list stamped 1 ms "before" its event is millisecond truncation
    summary = stats.summarize(lat)
    assert (summary.count, summary.max_ms, summary.p50_ms) == (4, 60.0, 12.5)
    assert math.isnan(stats.summarize([]).p99_ms)


def test_throughput_counts_from_the_first_event_to_the_last_list():
    assert stats.throughput(1000, 0, 2000) == 500.0
    assert math.isnan(stats.throughput(5, 100, 100))


def test_thirds_split_by_event_time():
    times = list(range(0, 90))
    first, last = stats.thirds(times, [float(t) for t in times])
    assert max(first) <= 30 and min(last) >= 59
    assert stats.thirds([], []) == ([], [])


@pytest.mark.parametrize(
    ("offered", "achieved", "sent", "received", "p50s", "kept"),
    [
        (1000, 990, 8000, 8000, (10, 12), True),
        (1000, 990, 8000, 8000, (10, 30), True),  # within the slack: noise, not a backlog
        (1000, 990, 8000, 8000, (10, 60), False),  # latency grew: a backlog is building
        (1000, 900, 8000, 8000, (10, 10), False),  # delivered too little
        (1000, 990, 8000, 7990, (10, 10), False),  # lists missing
        (1000, 990, 0, 0, (math.nan, math.nan), False),
    ],
)
def test_keeps_up(offered, achieved, sent, received, p50s, kept):
    assert stats.keeps_up(offered, achieved, sent, received, *p50s) is kept


def test_sustained_rate_is_the_highest_rate_kept_up_with_below_the_first_failure():
    assert stats.sustained_rate([(250, True), (500, True), (1000, False), (800, True)]) == 800
    assert stats.sustained_rate([(250, True), (900, False), (900, True), (1000, False), (1000, False)]) == 900
    assert stats.sustained_rate([(250, True), (500, False), (500, False), (600, True)]) == 250
    assert stats.sustained_rate([(250, False)]) == 0.0


def test_probe_rates_below_capacity_then_fractions_of_it():
    assert stats.probe_rates(1234, [250, 500, 1000, 2000], [0.6, 0.9]) == [250, 500, 740, 1000, 1110]


def test_swap_windows_split_at_the_announcement_and_the_first_new_list():
    event_ms = list(range(0, 10_000, 10))  # 1000 events over 10 s
    versions = ["old" if t < 5_000 else "new" for t in event_ms]
    lat = [5.0 if t < 4_000 else (50.0 if t < 7_000 else 5.0) for t in event_ms]
    windows = stats.swap_windows(event_ms, lat, versions, "new", announced_ms=4_000, after_ms=2_000)
    assert windows is not None and windows.switch_ms == 5_000
    assert windows.steady.count == 300 and windows.steady.p99_ms == 5.0  # 1 s .. 4 s
    assert windows.window.count == 301 and windows.window.p99_ms == 50.0  # 4 s .. 7 s
    assert stats.swap_windows(event_ms, lat, versions, "never", 4_000) is None


def test_source_of_reads_a_list_and_a_pipe_message():
    rec = Recommendation(
        "u-1", (RankedItem("i", 1.0),), "v-7", "e", 1.0, 2.0, SourcePosition("ev-click", 3, 123456)
    )
    assert source_of(rec.to_bytes()) == (("ev-click", 3, 123456), "v-7")
    message = payload("ev-buy", 1, 42, size=1000)
    assert len(message) == 1000
    assert source_of(message) == (("ev-buy", 1, 42), "kafka-pipe")


def test_interleave_keeps_each_session_in_order_and_many_users_open():
    sessions = [(f"s{n}", [(f"{n}-{k}", float(k)) for k in range(5)]) for n in range(50)]
    events = list(interleave(sessions, 600, users=20, seed=0))
    assert len(events) == 600
    by_user: dict[str, list[str]] = {}
    for user, item, _ in events:
        by_user.setdefault(user, []).append(item)
    for user, items in by_user.items():
        n = user.split("-s")[1]
        assert items == [f"{n}-{k}" for k in range(len(items))]
    assert len({user for user, _, _ in events[:40]}) > 10  # many users interleaved, not one at a time
    assert len(by_user) > len(sessions)  # sessions are cycled under new user ids


def test_workload_encodes_valid_events_with_unique_ids():
    catalog = Catalog("t", None, [("s", [("a", 1.7e9), ("b", 1.7e9 + 1)])], 2)
    messages = workload(catalog, 50, "tag", users=3, buy_share=0.5)
    events = [Event.from_bytes(m.value, m.kind) for m in messages]
    assert len({e.event_id for e in events}) == 50
    assert {m.kind for m in messages} == {"click", "buy"}
    pairs = zip(messages, events, strict=True)
    assert all(m.key == e.user_id.encode() and e.user_id.startswith("tag-") for m, e in pairs)


def catalog_report(sustained: float, half_p99: float, steady: float, window: float) -> dict:
    def run(rate: float | None, lists: float, p99: float = 10.0) -> dict:
        latency = {"p50_ms": 5.0, "p95_ms": 8.0, "p99_ms": p99, "max_ms": p99, "count": 10}
        return {"offered_per_s": rate, "sent": 10, "lists_per_s": lists, "latency": latency, "kept_up": None}

    return {
        "name": "cat",
        "n_items": 3,
        "model": {"batch": 256, "apply_events_per_s": 4000.0, "tensor_events_per_s": 9000.0},
        "pipe": run(None, 3000.0),
        "naive": run(None, 100.0),
        "streamer": {
            "unpaced": run(None, 2000.0),
            "ladder": [{**run(1000.0, 999.0), "kept_up": True}],
            "sustained_per_s": sustained,
            "half": run(sustained / 2, sustained / 2, half_p99),
            "swap": {"run": run(500.0, 500.0), "steady": {"p99_ms": steady}, "window": {"p99_ms": window}},
        },
    }


def test_targets_and_report():
    good = catalog_report(sustained=1600.0, half_p99=30.0, steady=20.0, window=30.0)
    verdicts = targets(good)
    assert all(v["met"] for v in verdicts.values())
    assert verdicts["sustained_vs_references"]["bar"] == 1500.0  # half of the pipe's 3000
    assert verdicts["sustained_vs_naive"]["bar"] == 1000.0
    bad = catalog_report(sustained=900.0, half_p99=80.0, steady=20.0, window=45.0)
    assert not any(v["met"] for v in targets(bad).values())
    good["targets"] = verdicts
    text = format_report({"catalogs": [good]})
    assert "bare Kafka pipe" in text and "MET" in text and "MISS" not in text


def test_a_million_item_catalog_is_judged_by_the_large_catalog_targets_without_pipe_or_naive_runs():
    catalog = catalog_report(sustained=2400.0, half_p99=90.0, steady=20.0, window=30.0)
    del catalog["pipe"], catalog["naive"]
    catalog["n_items"] = 1_000_000
    catalog["streamer"]["memory_after_swap"] = {"rss_gb": 2.1, "peak_rss_gb": 3.4}
    verdicts = targets(catalog)
    assert set(verdicts) == {
        "sustained_per_s",
        "p99_at_half_sustained_ms",
        "swap_window_p99_ratio",
        "worker_peak_rss_gb",
    }
    assert verdicts["sustained_per_s"] == {"value": 2400.0, "bar": 2000.0, "met": True}
    assert verdicts["p99_at_half_sustained_ms"] == {"value": 90.0, "bar": 100.0, "met": True}
    assert not verdicts["worker_peak_rss_gb"]["met"]
    catalog["targets"] = verdicts
    text = format_report({"catalogs": [catalog]})
    assert "bare Kafka pipe" not in text and "MISS  worker peak RSS (GB): 3.40 vs 3.00" in text
