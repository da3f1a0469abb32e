"""Query API benchmark: latency and throughput of ``GET /users/{user_id}/recommendations`` at a fixed
request rate (200/s) while the stream runs (375 events/s: half the rate the streamer last sustained),
on two workers, a third of the requests sent to the worker that does not hold the user, which
forwards them. Issue 13's target: p99 <= 20 ms.

1. A local broker (or ``KAFKA_BOOTSTRAP_SERVERS``), the rsc15-100k model of the streaming benchmark
   (trained once, cached), two workers of one deployment (4 partitions: two each).
2. Warm-up: events at the stream rate, so that a few thousand users have a state; then wait until both
   workers answer for every partition alike, and learn which worker holds which partition.
3. Queries alone (15 s, no events), then the stream alone (15 s, no queries): each side's cost and
   latency without the other.
4. Measured (60 s): the stream goes on at the same rate (a separate process producing events and
   timing their lists, as ``bench.stream_load`` does) while this process sends GETs for the warm-up
   users, open loop (each request timed from when it was due), every third one to the worker not
   holding the user.

Run: ``.venv/bin/python -m bench.api_benchmark`` (about 3 minutes; ``--help`` for rates and length).
Prints a table; writes every figure to ``var/bench/api_benchmark.json``.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import re
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.api_load import QuerySamples, Target, run_queries
from bench.stream_data import EventMessage, rsc15_catalog, workload
from bench.stream_deploy import Deployment, cpu_seconds, kafka, load_average
from bench.stream_load import RunSpec, Samples, run_load
from bench.stream_stats import latencies, percentile, summarize, throughput
from streamer.tools.worker_process import WorkerProcess
from streamer.worker.sequencing import user_partition

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "rsc15-100k"
# Half of the 750 events/s the streamer sustained on rsc15-100k in its last measured run (README,
# "What the reliability work costs"): the "half its sustained rate".
DEFAULT_EVENT_RATE = 375.0
TARGET_P99_MS = 20.0
WARMUP_S = 10
# The stream starts this long before the queries and runs this long after them.
STREAM_MARGIN_S = 3
IDLE_S = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--request-rate", type=float, default=200.0, help="GETs per second (default: 200)")
    parser.add_argument("--event-rate", type=float, default=DEFAULT_EVENT_RATE, help="events per second")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of the measured run (default: 60)"
    )
    parser.add_argument(
        "--alone-seconds",
        type=float,
        default=15.0,
        help="first, queries without events, then events without queries (default: 15 s each)",
    )
    parser.add_argument("--non-owner-every", type=int, default=3, help="every Nth GET to the non-owner")
    parser.add_argument("--users", type=int, default=2000, help="concurrently open sessions (default: 2000)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="rsc15-100k folder")
    parser.add_argument(
        "--cache", type=Path, default=PROJECT_ROOT / "var" / "bench" / "stream", help="models"
    )
    parser.add_argument("--json", type=Path, default=PROJECT_ROOT / "var" / "bench" / "api_benchmark.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    partitions = 4
    catalog = rsc15_catalog(args.data, args.cache / "models")
    report: dict = {"command": " ".join(["python -m bench.api_benchmark", *sys.argv[1:]])}
    report["load_before"] = load_average()
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(kafka(partitions))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="streamrec-api-bench-")))
        deployment = Deployment(bootstrap, f"apibench-{secrets.token_hex(3)}", partitions, workdir)
        deployment.create_topics()
        workers = stack.enter_context(two_workers(deployment, catalog.artifact))
        spec = RunSpec(
            bootstrap, _topics(deployment), partitions, args.event_rate, timeout_s=30, label="stream"
        )

        print(f"warm-up: {WARMUP_S} s of events at {args.event_rate:.0f}/s…", flush=True)
        warm = workload(catalog, int(args.event_rate * WARMUP_S), "warm", args.users, seed=1)
        asyncio.run(run_load(spec, warm))
        users = sorted({message.key.decode() for message in warm})
        owners = partition_owners(workers, users, partitions)
        print(f"{len(users)} users with a state; partition owners: {owners}", flush=True)

        targets = query_targets(users, owners, workers, partitions, args)
        alone = targets[: int(args.request_rate * args.alone_seconds)]
        idle = idle_cpu_per_s(workers)
        print(f"queries alone: {len(alone)} GETs at {args.request_rate:.0f}/s, no events…", flush=True)
        report["alone"] = measure_phase(
            workers, lambda: (run_phase(alone, args.request_rate, workers), None), idle
        )
        print(f"stream alone: {args.alone_seconds:.0f} s of events at {args.event_rate:.0f}/s…", flush=True)
        alone_events = workload(
            catalog, int(args.event_rate * args.alone_seconds), "alone", args.users, seed=2
        )
        report["stream_alone"] = stream_figures(spec, asyncio.run(run_load(spec, alone_events)))
        run_events = workload(
            catalog, int(args.event_rate * (args.seconds + 2 * STREAM_MARGIN_S)), "run", args.users
        )
        print(f"with the stream: {len(targets)} GETs at {args.request_rate:.0f}/s…", flush=True)
        report["with_stream"] = measure_phase(
            workers, lambda: with_stream(spec, run_events, targets, args.request_rate, workers), idle
        )
    report.update(
        settings=vars(args) | {"partitions": partitions, "data": str(args.data), "cache": str(args.cache)},
        load_after=load_average(),
    )
    report["settings"]["json"] = str(args.json)
    print(format_report(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


@contextlib.contextmanager
def two_workers(deployment: Deployment, model: Path) -> Iterator[list[WorkerProcess]]:
    store = deployment.workdir / "store"
    workers = []
    for name in ("a", "b"):
        extra = {"STREAMREC_DATA_DIR": str(deployment.workdir / name), "STREAMREC_WEB_HOST": "127.0.0.1"}
        env = deployment.worker_env(model, store, extra)
        workers.append(WorkerProcess(env, deployment.workdir / f"{name}.log").start())
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def base_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}"


def partition_owners(workers: Sequence[WorkerProcess], users: list[str], partitions: int) -> dict[int, str]:
    """partition -> URL of the worker holding it, once both workers give every partition the same
    owner and each holds some (the group has settled after the second worker joined)."""
    probe = {user_partition(user, partitions): user for user in users}
    assert len(probe) == partitions, "every partition needs a warm-up user"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = [{p: _served_by(worker, user) for p, user in probe.items()} for worker in workers]
        urls = {base_url(worker) for worker in workers}
        if seen[0] == seen[1] and set(seen[0].values()) == urls:
            return seen[0]
        time.sleep(0.5)  # poll interval while the group rebalances
    raise TimeoutError(f"the workers did not settle on partition owners: {seen}")


def _served_by(worker: WorkerProcess, user: str) -> str | None:
    """Who answered a GET for ``user`` sent to ``worker`` (None: no answer yet, e.g. 503 while the
    group rebalances)."""
    try:
        with urllib.request.urlopen(f"{base_url(worker)}/users/{user}/recommendations", timeout=10) as reply:
            return json.load(reply)["served_by"]
    except urllib.error.HTTPError:
        return None


def query_targets(
    users: list[str],
    owners: dict[int, str],
    workers: Sequence[WorkerProcess],
    partitions: int,
    args: argparse.Namespace,
) -> list[Target]:
    rng = random.Random(7)
    urls = [base_url(worker) for worker in workers]
    targets = []
    for n in range(int(args.request_rate * args.seconds)):
        user = rng.choice(users)
        owner = owners[user_partition(user, partitions)]
        forwarded = n % args.non_owner_every == args.non_owner_every - 1
        worker = next(url for url in urls if url != owner) if forwarded else owner
        targets.append(
            Target(f"{worker}/users/{user}/recommendations", "forwarded" if forwarded else "owner")
        )
    return targets


def idle_cpu_per_s(workers: Sequence[WorkerProcess], seconds: float = IDLE_S) -> float:
    """CPU seconds per second both workers spend with nothing to do (polling Kafka, timers)."""
    before = sum(cpu_seconds(worker.pid) for worker in workers)
    time.sleep(seconds)  # the measurement itself: CPU over a known stretch of idleness
    return (sum(cpu_seconds(worker.pid) for worker in workers) - before) / seconds


def measure_phase(
    workers: Sequence[WorkerProcess], run: Callable[[], tuple[QuerySamples, dict | None]], idle_per_s: float
) -> dict:
    """Figures of one phase: the queries' latency, the stream's (if it ran), the workers' CPU beyond
    idling (per request: meaningful without the stream) and their own timing of the answers."""
    cpu_before = [cpu_seconds(worker.pid) for worker in workers]
    handled_before = handled_times(workers)
    started = time.monotonic()
    queries, stream = run()
    elapsed = time.monotonic() - started
    cpu = [cpu_seconds(worker.pid) - before for worker, before in zip(workers, cpu_before, strict=True)]
    figures = query_figures(queries)
    return {
        "queries": figures,
        "stream": stream,
        "seconds": elapsed,
        "worker_cpu_seconds": cpu,
        "worker_cpu_us_per_request": (sum(cpu) - idle_per_s * elapsed) / figures["all"]["requests"] * 1e6,
        "worker_side": worker_side_shares(handled_times(workers) - handled_before),
    }


def run_phase(targets: list[Target], rate: float, workers: Sequence[WorkerProcess]) -> QuerySamples:
    warmup = [f"{base_url(worker)}/healthz" for worker in workers for _ in range(8)]
    return asyncio.run(run_queries(targets, rate, warmup))


def with_stream(
    spec: RunSpec,
    events: list[EventMessage],
    targets: list[Target],
    rate: float,
    workers: Sequence[WorkerProcess],
) -> tuple[QuerySamples, dict]:
    """The queries, sent while another process streams ``events``; (query samples, stream figures)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stream = context.Process(target=_stream, args=(spec, events, results))
    stream.start()
    try:
        time.sleep(STREAM_MARGIN_S)  # the stream reaches its pace before the first query
        queries = run_phase(targets, rate, workers)
        figures = results.get(timeout=180)
    finally:
        stream.join(30)
        if stream.is_alive():
            stream.kill()
    return queries, figures


def _stream(spec: RunSpec, events: list[EventMessage], results: multiprocessing.Queue) -> None:
    results.put(stream_figures(spec, asyncio.run(run_load(spec, events))))


def stream_figures(spec: RunSpec, samples: Samples) -> dict:
    measured = latencies(samples.event_ms, samples.list_ms)
    rate = throughput(len(measured), min(samples.event_ms, default=0), max(samples.list_ms, default=0))
    return {
        "offered_per_s": spec.rate,
        "sent": samples.sent,
        "lists_per_s": rate,
        **summarize(measured).to_dict(),
    }


def handled_times(workers: Sequence[WorkerProcess]) -> Counter[str]:
    """Both workers' ``streamrec_api_request_seconds`` buckets of answered GETs (upper bound ->
    cumulative count): the time inside the workers, without the client's side and the network. A
    forwarded request is counted at both workers, its forwarder's time including the owner's."""
    pattern = re.compile(
        r'^streamrec_api_request_seconds_bucket\{le="([^"]+)",route="/users/\{user_id\}/recommendations",'
        r'status="200"\} (\S+)$',
        re.MULTILINE,
    )
    buckets: Counter[str] = Counter()
    for worker in workers:
        with urllib.request.urlopen(f"{base_url(worker)}/metrics", timeout=10) as reply:
            for bound, count in pattern.findall(reply.read().decode()):
                buckets[bound] += int(float(count))
    return buckets


def worker_side_shares(buckets: Counter[str]) -> dict[str, float]:
    """Share of the workers' answers given within each bucket bound (seconds)."""
    total = buckets["+Inf"]
    return {bound: count / total for bound, count in buckets.items() if bound != "+Inf" and total}


def query_figures(samples: QuerySamples) -> dict:
    start = min(samples.due_s)
    figures = {}
    for group in ("all", "owner", "forwarded"):
        chosen = [n for n, g in enumerate(samples.group) if group in ("all", g)]
        answered = [samples.latency_ms[n] for n in chosen if samples.status[n] == 200]
        figures[group] = {
            "requests": len(chosen),
            "answered_per_s": len(answered) / (samples.last_done_s - start),
            "not_200": len(chosen) - len(answered),
            **summarize(answered).to_dict(),
            "p999_ms": percentile(answered, 99.9),
        }
    return figures


def format_report(report: dict) -> str:
    settings = report["settings"]
    stream = report["with_stream"]["stream"]
    lines = [
        f"GET /users/{{id}}/recommendations at {settings['request_rate']:.0f}/s, two workers, "
        f"1 in {settings['non_owner_every']} requests to the worker not holding the user",
        "",
        "| phase | requests | count | answered/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | not 200 |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for phase, title in (("alone", "queries alone"), ("with_stream", "with the stream")):
        for group, f in report[phase]["queries"].items():
            lines.append(
                f"| {title} | {group} | {f['requests']} | {f['answered_per_s']:.1f} | {f['p50_ms']:.1f} "
                f"| {f['p95_ms']:.1f} | {f['p99_ms']:.1f} | {f['p999_ms']:.1f} | {f['max_ms']:.1f} "
                f"| {f['not_200']} |"
            )
    lines.append("")
    for phase, title in (("alone", "queries alone"), ("with_stream", "with the stream")):
        figures = report[phase]
        shares = ", ".join(
            f"{float(bound) * 1000:g} ms {share:.1%}" for bound, share in figures["worker_side"].items()
        )
        cores = ", ".join(f"{seconds / figures['seconds']:.0%}" for seconds in figures["worker_cpu_seconds"])
        lines.append(f"{title}: answered inside the workers within {shares}; worker CPU {cores} of a core")
    cost = report["alone"]["worker_cpu_us_per_request"]
    lines.append(f"worker CPU per request, both workers, idling subtracted (queries alone): {cost:.0f} µs")
    p99 = report["with_stream"]["queries"]["all"]["p99_ms"]
    for title, figures in (("stream alone", report["stream_alone"]), ("stream with the queries", stream)):
        lines.append(
            f"{title}: offered {figures['offered_per_s']:.0f} events/s, "
            f"{figures['lists_per_s']:.0f} lists/s, p50 {figures['p50_ms']:.0f} ms, "
            f"p99 {figures['p99_ms']:.0f} ms ({figures['count']} lists of {figures['sent']} events)"
        )
    lines += [
        f"load average {report['load_before']:.1f} before, {report['load_after']:.1f} after",
        f"target p99 <= {TARGET_P99_MS:.0f} ms with the stream: "
        f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'} ({p99:.1f} ms)",
    ]
    return "\n".join(lines)


def _topics(deployment: Deployment) -> dict[str, str]:
    topics = deployment.topics
    return {"click": topics["click"], "buy": topics["buy"], "lists": topics["lists"]}


if __name__ == "__main__":
    sys.exit(main())
