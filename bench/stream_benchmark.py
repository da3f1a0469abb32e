"""Streaming benchmark: sustained end-to-end throughput and latency of the streamer on one machine,
next to (a) the bare model and (b) a bare Kafka pipe measured in the same run, a naive configuration
(one event per micro-batch), and a model hot swap in the middle of a run.

Per catalog (rsc15-100k, and a synthetic catalog of 50,000 items; ``--large-catalogs``: synthetic
catalogs of 50k, 200k and 1M items, streamer runs only, with the worker's resident memory):

1. (a) bare model: ``Recommender.apply`` on micro-batches of the worker's batch size, no Kafka.
2. (b) bare Kafka pipe: a plain aiokafka consumer -> producer process, list-sized messages, unpaced.
3. naive: a streamer worker with ``STREAMREC_BATCH_MAX=1``, unpaced.
4. streamer (its default settings unless --batch-max/--batch-within-ms): unpaced (its capacity),
   then paced runs at fixed rates below that capacity and at fractions of it; "sustained" is the
   highest offered rate it keeps up with (>= 95% delivered, every list arrives, latency not growing
   from the first third of the run to the last); then a run at half the sustained rate (the p99
   target) and one at the same rate with a model swap announced 40% of the way in (p99 from the
   announcement to 2 s after the first list of the new model, vs the steady state before).

Latency = the list's Kafka timestamp - its event's Kafka timestamp (both CreateTime, this machine's
clock), pairs matched by the list's source position. Events come from many concurrently open
sessions (one user each), keyed by user, over several partitions, ~3% of them buys. A local broker is
started unless KAFKA_BOOTSTRAP_SERVERS is set. Prints a table and writes JSON (--json).

Run: ``.venv/bin/python -m bench.stream_benchmark [--quick] [--large-catalogs]`` (or ``make bench-stream``).
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.model_reference import measure_model
from bench.stream_data import Catalog, rsc15_catalog, swap_artifact, synthetic_catalog, workload
from bench.stream_deploy import Deployment, kafka, kafka_pipe, load_average, worker
from bench.stream_report import format_report, targets
from bench.stream_runs import Plan, Runner
from models.ann import AnnParams
from models.artifact import load_artifact
from models.shipped_index import ship_index
from schemas.model_updates import ModelAnnouncement
from streamer.common.settings import SETTINGS, Settings
from streamer.registry import ships_index

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "rsc15-100k"
LARGE_CATALOGS = (50_000, 200_000, 1_000_000)
SWAP_ITEMS_PER_S = 10_000  # the swap run's extra seconds: one per this many items
FIXED_RATES = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
FULL = dict(
    run_seconds=8,
    unpaced_events=30_000,
    naive_events=4_000,
    model_seconds=5,
    swap_seconds=16,
    settle_seconds=5,
    refine_steps=2,
)
QUICK = dict(
    run_seconds=3,
    unpaced_events=6_000,
    naive_events=1_000,
    model_seconds=2,
    swap_seconds=8,
    settle_seconds=1,
    refine_steps=1,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a ~2-minute smoke run: shorter runs, fewer rates"
    )
    parser.add_argument(
        "--catalogs", nargs="+", choices=("rsc15", "synthetic"), default=["rsc15", "synthetic"], help="which"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="rsc15-100k folder (default: %(default)s)"
    )
    parser.add_argument(
        "--synthetic-items", type=int, nargs="+", default=[50_000], help="items of each synthetic catalog"
    )
    parser.add_argument(
        "--large-catalogs",
        action="store_true",
        help="synthetic catalogs of 50k, 200k and 1M items (unless --synthetic-items says otherwise), "
        "the streamer alone: no bare Kafka pipe, no naive run",
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic (default: 4)")
    parser.add_argument("--users", type=int, default=2000, help="concurrently open sessions (default: 2000)")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=list(FIXED_RATES), help="fixed offered rates"
    )
    parser.add_argument(
        "--batch-max", type=int, help="STREAMREC_BATCH_MAX of the streamer (default: its own)"
    )
    parser.add_argument("--batch-within-ms", type=float, help="STREAMREC_BATCH_WITHIN_MS of the streamer")
    parser.add_argument("--no-swap", action="store_true", help="skip the model-swap run")
    parser.add_argument(
        "--cache", type=Path, default=PROJECT_ROOT / "var" / "bench" / "stream", help="models"
    )
    parser.add_argument("--json", type=Path, default=PROJECT_ROOT / "var" / "bench" / "stream_benchmark.json")
    args = parser.parse_args(argv)
    if args.large_catalogs:
        args.catalogs = ["synthetic"]
        if args.synthetic_items == parser.get_default("synthetic_items"):
            args.synthetic_items = list(LARGE_CATALOGS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    plan = Plan(
        **(QUICK if args.quick else FULL),
        fractions=(0.6, 0.9) if args.quick else (0.6, 0.75, 0.9, 1.0),
        fixed_rates=tuple(args.rates),
        users=args.users,
    )
    report: dict = {"command": " ".join(["python -m bench.stream_benchmark", *sys.argv[1:]])}
    report["machine"] = machine()
    catalogs = load_catalogs(args)
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(kafka(args.partitions))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="streamrec-bench-")))
        report["catalogs"] = [bench_catalog(c, bootstrap, args, plan, workdir) for c in catalogs]
    report["machine"]["load_after"] = load_average()
    report["seconds"] = round(time.monotonic() - started, 1)
    print(format_report(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(finite(report), indent=1) + "\n")
    print(f"\nwrote {args.json} ({report['seconds']:.0f} s)")
    return 0


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_before": load_average(),
    }


def load_catalogs(args: argparse.Namespace) -> list[Catalog]:
    models = args.cache / "models"
    loaders = {
        "rsc15": lambda: [rsc15_catalog(args.data, models)],
        "synthetic": lambda: [synthetic_catalog(models, n_items=n) for n in args.synthetic_items],
    }
    return [catalog for name in args.catalogs for catalog in loaders[name]()]


def streamer_settings(args: argparse.Namespace) -> dict[str, str]:
    """The streamer's batching settings: the options, else the environment, else the defaults."""
    given = {"STREAMREC_BATCH_MAX": args.batch_max, "STREAMREC_BATCH_WITHIN_MS": args.batch_within_ms}
    return {
        name: str(value if value is not None else os.environ.get(name, SETTINGS[name].default))
        for name, value in given.items()
    }


def bench_catalog(
    catalog: Catalog, bootstrap: str, args: argparse.Namespace, plan: Plan, workdir: Path
) -> dict:
    print(f"\n=== {catalog.name}: {catalog.n_items} items, {len(catalog.sessions)} sessions", flush=True)
    settings = streamer_settings(args)
    batch_max = int(settings["STREAMREC_BATCH_MAX"])
    print(f"(a) bare model, batches of {batch_max}…", flush=True)
    artifact = load_artifact(catalog.artifact)
    model = measure_model(
        artifact, workload(catalog, 30_000, "ref", plan.users), batch_max, plan.model_seconds
    )
    print(f"    {model.apply_events_per_s:.0f} events/s (tensor work alone {model.tensor_events_per_s:.0f})")
    result: dict = {"name": catalog.name, "n_items": catalog.n_items, "model": model.to_dict()}
    short = catalog.name
    store = workdir / short / "store"

    def deployment(system: str) -> Deployment:
        name = f"sb{os.getpid()}-{short}-{system}"
        return Deployment(bootstrap, name, args.partitions, workdir / short / system)

    # The swap run lasts until the new model has served a while: loading it and building its index
    # take ~25 s per million items on one thread of an idle machine (bench/catalog_benchmark.py), and
    # more than the 40 s that 20,000 items per extra second left in a run beside the serving worker.
    swap_seconds = plan.swap_seconds + catalog.n_items / SWAP_ITEMS_PER_S
    runner = Runner(catalog, dataclasses.replace(plan, swap_seconds=swap_seconds))
    if not args.large_catalogs:  # neither depends on the catalog's size
        print("(b) bare Kafka pipe…", flush=True)
        within_ms = round(float(settings["STREAMREC_BATCH_WITHIN_MS"]))
        with kafka_pipe(deployment("pipe"), model.list_bytes, batch_max, within_ms) as pipe:
            result["pipe"] = runner.run("pipe", pipe, None, plan.unpaced_events)
        print("naive configuration (STREAMREC_BATCH_MAX=1)…", flush=True)
        with worker(
            deployment("naive"), catalog.artifact, store, {**settings, "STREAMREC_BATCH_MAX": "1"}
        ) as naive:
            result["naive"] = runner.run("naive", naive, None, plan.naive_events)
    print(f"streamer ({', '.join(f'{k}={v}' for k, v in settings.items())})…", flush=True)
    announcement = None if args.no_swap else swap_model(catalog, store, f"swap-{short}")
    with worker(deployment("streamer"), catalog.artifact, store, settings) as streamer:
        result["streamer"] = runner.streamer(streamer, announcement)
    result["streamer"]["settings"] = settings
    result["targets"] = targets(result)
    shutil.rmtree(workdir / short, ignore_errors=True)
    return result


def swap_model(catalog: Catalog, store: Path, name: str) -> ModelAnnouncement:
    """Another model of ``catalog`` in ``store/name``, stored as the registry stores a promoted one:
    with its approximate index when the workers' settings (this environment's) serve it through one."""
    announcement = swap_artifact(catalog.artifact, store, name, seed=11)
    if ships_index(Settings.from_env(), catalog.n_items):
        print(f"shipping the index of {name}…", flush=True)
        ship_index(store / name, load_artifact(store / name), AnnParams())
    return announcement


def finite(value: object) -> object:
    """``value`` with NaN and infinities replaced by None, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
