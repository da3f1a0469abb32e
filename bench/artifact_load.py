"""Loading a large model artifact beside a serving loop: what a hot swap costs the worker.

Writes (once, cached under ``--cache``) the streaming benchmark's synthetic artifact of ``--items``
items (:func:`bench.stream_data.synthetic_model`) and its shipped approximate index, then, in a fresh
process per measurement, loads it as the worker's model feed does: files, checksums and weights in a
low-priority thread, the vocabulary in steps on the main thread, then the shipped index and the
recommender in the thread again, while the main thread otherwise sleeps 1 ms at a time, as a
stand-in for the event loop. Each measurement is made twice: for a first model (the vocabulary read
whole) and for a retrained one while the first still serves (its vocabulary extends the serving one's,
so the serving ids are reused). Prints the wall and CPU seconds of the load, the process's peak RSS,
and the longest gaps the main thread saw: its own steps, or the loader holding the GIL.

Run: ``.venv/bin/python -m bench.artifact_load [--items 1000000] [--repeat 3]``.
"""

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from bench.stream_data import synthetic_model
from models.ann import AnnParams
from models.artifact import ModelArtifact, load_artifact, read_artifact
from models.shipped_index import load_shipped_index, ship_index


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="measurements, each in a fresh process")
    parser.add_argument("--cache", type=Path, default=Path("var/bench/artifact_load"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process's job
    parser.add_argument("--serving", action="store_true", help=argparse.SUPPRESS)  # with a serving model
    return parser.parse_args(argv)


def synthetic_artifact(cache: Path, n_items: int) -> Path:
    """The streaming benchmark's synthetic model, with its index shipped beside it."""
    path = synthetic_model(cache, n_items)
    if not (path / "ann.index.json").is_file():
        print(f"shipping its index -> {path}", flush=True)
        ship_index(path, load_artifact(path), AnnParams())
    return path


def measure(path: Path, serving: bool) -> dict:
    """One load beside a 1 ms sleep loop (run in a fresh process); with ``serving``, a first copy of
    the model is loaded beforehand and serves as the known vocabulary."""
    from streamer.worker.model_feed import lower_loader_priority

    torch.set_num_threads(1)
    known = load_artifact(path) if serving else None
    loader = ThreadPoolExecutor(1, initializer=lower_loader_priority)
    started, cpu = time.perf_counter(), time.process_time()
    stage = loader.submit(read_artifact, path)
    gaps, last, steps, recommender = [], time.perf_counter(), None, None
    while recommender is None or not recommender.done():
        if steps is None and stage.done():
            steps = stage.result().finish(known)
        elif steps is not None and recommender is None:
            try:
                next(steps)
            except StopIteration as finished:
                recommender = loader.submit(serving_recommender, path, finished.value)
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    recommender.result()
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    gaps.sort(reverse=True)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "peak_rss_gb": _peak_rss_gb(),
        "gaps_ms": [round(g * 1000) for g in gaps[:3]],
    }


def serving_recommender(path: Path, artifact: ModelArtifact) -> object:
    """What the feed builds in its thread once the vocabulary is made: index and recommender."""
    from streamer.worker.engine import Recommender
    from streamer.worker.policy import ServingPolicy

    return Recommender(artifact, ServingPolicy(), index=load_shipped_index(path, artifact))


def _peak_rss_gb() -> float:
    """VmHWM: unlike getrusage's maximum, it starts afresh at exec, not from the parent's."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.serving)))
        return 0
    path = synthetic_artifact(args.cache, args.items)
    print(f"loading {path} beside a 1 ms sleep loop, {args.repeat} x 2 fresh processes", flush=True)
    for run, serving in itertools.product(range(1, args.repeat + 1), (False, True)):
        child = [sys.executable, "-m", "bench.artifact_load", "--measure", str(path)]
        done = subprocess.run(child + ["--serving"] * serving, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return 1
        figures = json.loads(done.stdout)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(
            f"run {run}, {'retrained, beside the serving model' if serving else 'first model'}: "
            f"{figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU, peak RSS "
            f"{figures['peak_rss_gb']:.2f} GB, longest loop gaps {figures['gaps_ms']} ms, load {load}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
