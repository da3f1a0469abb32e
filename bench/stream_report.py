"""The streaming benchmark's table and target verdicts, from the report dictionary (pure functions)."""

import math

# The targets.
SHARE_OF_REFERENCE = 0.5  # sustained end-to-end >= this x min(bare model, bare Kafka pipe)
TIMES_NAIVE = 10.0  # sustained end-to-end >= this x the naive configuration
P99_AT_HALF_MS = 50.0  # p99 at half the sustained maximum
SWAP_P99_RATIO = 2.0  # p99 in the swap window < this x steady state
# Issue 12 (large catalogs), by catalog size: sustained events/s (50k: twice the 1,960/s of
# 2026-11-29), p99 at half the sustained rate; and the worker's peak resident memory.
SUSTAINED_BY_ITEMS = {50_000: 3_920.0, 1_000_000: 2_000.0}
P99_AT_HALF_BY_ITEMS_MS = {1_000_000: 100.0}
WORKER_PEAK_RSS_GB = 3.0

COLUMNS = (
    ("system", 26, "s"),
    ("offered/s", 9, ".0f"),
    ("lists/s", 8, ".0f"),
    ("p50 ms", 7, ".0f"),
    ("p95 ms", 7, ".0f"),
    ("p99 ms", 7, ".0f"),
    ("kept up", 7, "s"),
    ("CPU µs/ev", 9, ".0f"),
    ("load", 5, ".1f"),
)


def _cell(value: object, width: int, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    if isinstance(value, str):
        return value.ljust(width) if spec == "s" and width > 10 else value.rjust(width)
    return format(value, spec).rjust(width)


def run_row(name: str, run: dict) -> str:
    latency = run.get("latency") or {}
    offered = run.get("offered_per_s")
    values = [
        name,
        "unpaced" if offered is None and run.get("sent") else offered,
        run.get("lists_per_s"),
        latency.get("p50_ms"),
        latency.get("p95_ms"),
        latency.get("p99_ms"),
        {True: "yes", False: "NO", None: "-"}[run.get("kept_up")],
        run.get("cpu_us_per_event"),
        run.get("load"),
    ]
    return "  ".join(_cell(v, w, s) for v, (_, w, s) in zip(values, COLUMNS, strict=True))


def header() -> str:
    return "  ".join(name.ljust(w) if s == "s" and w > 10 else name.rjust(w) for name, w, s in COLUMNS)


def catalog_rows(catalog: dict) -> list[str]:
    model = catalog["model"]
    rows = [
        run_row(f"(a) bare model, batch {model['batch']}", {"lists_per_s": model["apply_events_per_s"]}),
        run_row("    tensor work only", {"lists_per_s": model["tensor_events_per_s"]}),
    ]
    if "pipe" in catalog:
        rows.append(run_row("(b) bare Kafka pipe", catalog["pipe"]))
    if "naive" in catalog:
        rows.append(run_row("naive (batch max 1)", catalog["naive"]))
    streamer = catalog["streamer"]
    rows.append(run_row("streamer", streamer["unpaced"]))
    rows += [run_row("streamer", run) for run in streamer["ladder"]]
    if streamer.get("half"):
        rows.append(run_row("streamer at half sustained", streamer["half"]))
    swap = streamer.get("swap")
    if swap and swap.get("steady"):
        rows.append(
            run_row("  swap run: steady state", {**swap["run"], "latency": swap["steady"], "kept_up": None})
        )
        rows.append(
            run_row("  swap run: swap window", {**swap["run"], "latency": swap["window"], "kept_up": None})
        )
    return rows


def targets(catalog: dict) -> dict:
    """Each target that applies to ``catalog``: the measured value, the bar, and whether it is met."""
    streamer = catalog["streamer"]
    sustained = streamer["sustained_per_s"]
    n_items = catalog["n_items"]
    half = (streamer.get("half") or {}).get("latency") or {}
    swap = streamer.get("swap") or {}
    steady_p99 = (swap.get("steady") or {}).get("p99_ms", math.nan)
    window_p99 = (swap.get("window") or {}).get("p99_ms", math.nan)
    verdicts = {}
    if "pipe" in catalog:
        reference = min(catalog["model"]["apply_events_per_s"], catalog["pipe"]["lists_per_s"] or 0.0)
        verdicts["sustained_vs_references"] = _verdict(sustained, SHARE_OF_REFERENCE * reference, higher=True)
    if "naive" in catalog:
        naive = catalog["naive"]["lists_per_s"] or 0.0
        verdicts["sustained_vs_naive"] = _verdict(sustained, TIMES_NAIVE * naive, higher=True)
    if n_items in SUSTAINED_BY_ITEMS:
        verdicts["sustained_per_s"] = _verdict(sustained, SUSTAINED_BY_ITEMS[n_items], higher=True)
    p99_bar = P99_AT_HALF_BY_ITEMS_MS.get(n_items, P99_AT_HALF_MS)
    verdicts["p99_at_half_sustained_ms"] = _verdict(half.get("p99_ms", math.nan), p99_bar, higher=False)
    verdicts["swap_window_p99_ratio"] = _verdict(_ratio(window_p99, steady_p99), SWAP_P99_RATIO, higher=False)
    memory = streamer.get("memory_after_swap") or streamer.get("memory")
    if memory:
        verdicts["worker_peak_rss_gb"] = _verdict(memory["peak_rss_gb"], WORKER_PEAK_RSS_GB, higher=False)
    return verdicts


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 else math.nan


def _verdict(value: float, bar: float, higher: bool) -> dict:
    met = (value >= bar if higher else value <= bar) if not (math.isnan(value) or math.isnan(bar)) else False
    return {"value": value, "bar": bar, "met": met}


def target_lines(catalog: dict) -> list[str]:
    verdicts = catalog["targets"]
    texts = {
        "sustained_vs_references": "sustained >= 50% of min(bare model, Kafka pipe)",
        "sustained_vs_naive": "sustained >= 10x naive",
        "sustained_per_s": "sustained events/s",
        "p99_at_half_sustained_ms": "p99 at half the sustained rate (ms)",
        "swap_window_p99_ratio": "swap-window p99 < 2x steady-state p99",
        "worker_peak_rss_gb": "worker peak RSS (GB)",
    }
    lines = []
    for key, text in texts.items():
        if key not in verdicts:
            continue
        v = verdicts[key]
        lines.append(f"  {'MET ' if v['met'] else 'MISS'}  {text}: {v['value']:.2f} vs {v['bar']:.2f}")
    return lines


def format_report(report: dict) -> str:
    lines = []
    for catalog in report["catalogs"]:
        lines.append(f"\n{catalog['name']} ({catalog['n_items']} items)")
        lines.append(header())
        lines += catalog_rows(catalog)
        lines.append(f"  sustained: {catalog['streamer']['sustained_per_s']:.0f} events/s")
        memory = catalog["streamer"].get("memory_after_swap") or catalog["streamer"].get("memory")
        if memory:
            lines.append(f"  worker RSS {memory['rss_gb']:.2f} GB, peak {memory['peak_rss_gb']:.2f} GB")
        lines += target_lines(catalog)
    return "\n".join(lines)
