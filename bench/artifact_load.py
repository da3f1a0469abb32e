"""Loading a large model artifact beside a serving loop: what a hot swap costs the worker.

Writes (once, cached under ``--cache``) the streaming benchmark's synthetic artifact of ``--items``
items (:func:`bench.stream_data.synthetic_model`) and its shipped approximate index, then, in a fresh
process per measurement, loads it in a thread as the worker's model feed does (weights, vocabulary,
shipped index, recommender) while the main thread sleeps 1 ms at a time, as a stand-in for the
event loop. Prints the wall and CPU seconds of the load, the process's peak RSS above what it held
before, and the longest gaps the main thread saw: the time the loader held the GIL in one piece.

Run: ``.venv/bin/python -m bench.artifact_load [--items 1000000] [--repeat 3]``.
"""

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from bench.stream_data import synthetic_model
from models.ann import AnnParams
from models.artifact import load_artifact
from models.shipped_index import load_shipped_index, ship_index


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="measurements, each in a fresh process")
    parser.add_argument("--cache", type=Path, default=Path("var/bench/artifact_load"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process's job
    return parser.parse_args(argv)


def synthetic_artifact(cache: Path, n_items: int) -> Path:
    """The streaming benchmark's synthetic model, with its index shipped beside it."""
    path = synthetic_model(cache, n_items)
    if not (path / "ann.index.json").is_file():
        print(f"shipping its index -> {path}", flush=True)
        ship_index(path, load_artifact(path), AnnParams())
    return path


def measure(path: Path) -> dict:
    """One load in a thread beside a 1 ms sleep loop (run in a fresh process)."""
    from streamer.worker.engine import Recommender
    from streamer.worker.policy import ServingPolicy

    torch.set_num_threads(1)
    before = _peak_rss_gb()
    done = threading.Event()
    figures: dict = {}

    def load() -> None:
        try:
            started, cpu = time.perf_counter(), time.thread_time()
            artifact = load_artifact(path)
            Recommender(artifact, ServingPolicy(), index=load_shipped_index(path, artifact))
            figures.update(wall_s=time.perf_counter() - started, cpu_s=time.thread_time() - cpu)
        finally:
            done.set()

    threading.Thread(target=load).start()
    gaps, last = [], time.perf_counter()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    if "wall_s" not in figures:
        raise SystemExit("the load failed (its traceback is above)")
    gaps.sort(reverse=True)
    figures.update(peak_rss_gb=_peak_rss_gb() - before, gaps_ms=[round(g * 1000) for g in gaps[:3]])
    return figures


def _peak_rss_gb() -> float:
    """VmHWM: unlike getrusage's maximum, it starts afresh at exec, not from the parent's."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    path = synthetic_artifact(args.cache, args.items)
    print(f"loading {path} in a thread beside a 1 ms sleep loop, {args.repeat} fresh processes", flush=True)
    for run in range(1, args.repeat + 1):
        child = [sys.executable, "-m", "bench.artifact_load", "--measure", str(path)]
        done = subprocess.run(child, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return 1
        figures = json.loads(done.stdout)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(
            f"run {run}: {figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU of the loader, peak"
            f" RSS +{figures['peak_rss_gb']:.2f} GB, longest loop gaps {figures['gaps_ms']} ms, load {load}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
