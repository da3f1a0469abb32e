"""The runs of the streaming benchmark against one system under test, as figures (dictionaries)."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaProducer

from bench import stream_stats as stats
from bench.stream_data import Catalog, EventMessage, workload
from bench.stream_deploy import System, load_average
from bench.stream_load import Action, RunSpec, Samples, run_load
from schemas.model_updates import ANNOUNCEMENT_KEY, ModelAnnouncement


@dataclass(frozen=True)
class Plan:
    """How long and how hard each run is (``--quick`` shrinks it)."""

    run_seconds: float  # each paced run
    unpaced_events: int  # the capacity runs (pipe, streamer)
    naive_events: int
    model_seconds: float
    swap_seconds: float
    fractions: tuple[float, ...]  # of the streamer's unpaced capacity, as offered rates
    fixed_rates: tuple[float, ...]  # offered rates tried when below that capacity
    settle_seconds: float  # pause after a run that fell behind
    refine_steps: int  # bisections between the last rate kept up with and the first one not
    users: int  # concurrently open sessions


class Runner:
    """Runs load against systems under test; every run gets fresh users (a new tag)."""

    def __init__(self, catalog: Catalog, plan: Plan) -> None:
        self.catalog = catalog
        self.plan = plan
        self.runs = 0

    def run(self, label: str, system: System, rate: float | None, count: int) -> dict:
        return self.measure(label, system, rate, count)[0]

    def paced(self, system: System, rate: float, seconds: float) -> dict:
        return self.run(f"{rate:.0f}/s", system, rate, max(1, int(rate * seconds)))

    def settle(self) -> None:
        """Let the worker finish what an overload left behind (changelog writes, compactions)."""
        time.sleep(self.plan.settle_seconds)

    def measure(
        self,
        label: str,
        system: System,
        rate: float | None,
        count: int,
        actions: Sequence[tuple[str, Action]] = (),
    ) -> tuple[dict, Samples]:
        """One run: ``count`` events offered at ``rate`` (None: unpaced); figures and raw samples."""
        self.runs += 1
        events: list[EventMessage] = workload(
            self.catalog, count, f"r{self.runs}", self.plan.users, seed=self.runs
        )
        deployment = system.deployment
        timeout = 60.0 if rate is None else 2 * self.plan.run_seconds + 10
        spec = RunSpec(deployment.bootstrap, deployment.topics, deployment.partitions, rate, timeout, label)
        load, cpu, batches = load_average(), system.cpu_seconds(), system.batches()
        samples = asyncio.run(run_load(spec, events, actions))
        cpu = system.cpu_seconds() - cpu
        applied, batch_count = (
            after - before for after, before in zip(system.batches(), batches, strict=True)
        )
        figures = run_figures(samples, cpu, (load + load_average()) / 2)
        figures["label"] = label
        figures["mean_batch"] = applied / batch_count if batch_count else None
        print(f"    {label}: {describe(figures)}", flush=True)
        return figures, samples

    def streamer(self, system: System, announcement: ModelAnnouncement | None) -> dict:
        """Capacity, the rate ladder, the sustained rate, half of it, and the swap run."""
        self.paced(system, 500, 2)  # warm-up: first batches, RocksDB, connections
        unpaced = self.run("unpaced", system, None, self.plan.unpaced_events)
        self.settle()
        ladder: list[dict] = []
        kept, failed = 0.0, 0.0
        for rate in stats.probe_rates(
            unpaced["lists_per_s"] or 0.0, self.plan.fixed_rates, self.plan.fractions
        ):
            if not self.attempt(system, rate, ladder):
                failed = rate
                break
            kept = rate
        for _ in range(self.plan.refine_steps if failed else 0):  # bisect between the two
            middle = round((kept + failed) / 2, -1)
            if middle in (kept, failed):
                break
            if self.attempt(system, middle, ladder):
                kept = middle
            else:
                failed = middle
        sustained = stats.sustained_rate([(r["offered_per_s"], r["kept_up"]) for r in ladder])
        result = {"unpaced": unpaced, "ladder": ladder, "sustained_per_s": sustained}
        if sustained > 0:
            result["half"] = self.paced(system, sustained / 2, self.plan.run_seconds)
            result["memory"] = system.memory_gb()
            if announcement is not None:
                result["swap"] = self.swap(system, sustained / 2, announcement)
                result["memory_after_swap"] = system.memory_gb()
        return result

    def attempt(self, system: System, rate: float, ladder: list[dict]) -> bool:
        """Run ``rate``, and once more if it fell behind (other jobs on a shared machine stall the
        system too); whether a run kept up. Every run goes into ``ladder``."""
        for _ in range(2):
            ladder.append(self.paced(system, rate, self.plan.run_seconds))
            if ladder[-1]["kept_up"]:
                return True
            self.settle()
        return False

    def swap(self, system: System, rate: float, announcement: ModelAnnouncement) -> dict:
        """A paced run with ``announcement`` published 40% of the way in; latency around the switch."""
        topic = system.deployment.topics["models"]

        async def announce(producer: AIOKafkaProducer) -> None:
            fresh = msgspec.structs.replace(announcement, created_at=time.time())
            await producer.send_and_wait(topic, fresh.to_bytes(), ANNOUNCEMENT_KEY)

        at = self.plan.swap_seconds * 0.4
        count = int(rate * self.plan.swap_seconds)
        run, samples = self.measure(
            f"swap at {rate:.0f}/s", system, rate, count, (("announce", (at, announce)),)
        )
        swap = {"run": run, "new_version": announcement.version, "announce_after_s": at}
        announced_ms = samples.actions_ms["announce"]
        lat = stats.latencies(samples.event_ms, samples.list_ms)
        windows = stats.swap_windows(
            samples.event_ms, lat, samples.versions, announcement.version, announced_ms
        )
        if windows is None:
            print("    the new model served no list in the swap run", flush=True)
            return swap
        swap.update(
            switch_after_announce_ms=windows.switch_ms - announced_ms,
            steady=windows.steady.to_dict(),
            window=windows.window.to_dict(),
        )
        print(
            f"    swap: switched {windows.switch_ms - announced_ms} ms after the announcement; p99 "
            f"steady {windows.steady.p99_ms:.0f} ms, swap window {windows.window.p99_ms:.0f} ms",
            flush=True,
        )
        return swap


def run_figures(samples: Samples, cpu_s: float, load: float) -> dict:
    lat = stats.latencies(samples.event_ms, samples.list_ms)
    received = len(lat)
    achieved = stats.throughput(received, min(samples.event_ms), max(samples.list_ms)) if received else 0.0
    first, last = stats.thirds(samples.event_ms, lat)
    first_p50, last_p50 = stats.percentile(first, 50), stats.percentile(last, 50)
    offered = samples.offered_rate
    kept_up = (
        None
        if offered is None
        else stats.keeps_up(offered, achieved, samples.sent, received, first_p50, last_p50)
    )
    return {
        "offered_per_s": offered,
        "sent": samples.sent,
        "received": received,
        "unmatched": samples.unmatched,
        "lists_per_s": achieved,
        "latency": stats.summarize(lat).to_dict(),
        "p50_first_third_ms": first_p50,
        "p50_last_third_ms": last_p50,
        "kept_up": kept_up,
        "cpu_us_per_event": 1e6 * cpu_s / received if received else None,
        "load": load,
    }


def describe(figures: dict) -> str:
    lat = figures["latency"]
    kept = {True: ", kept up", False: ", fell behind", None: ""}[figures["kept_up"]]
    batch = f", mean batch {figures['mean_batch']:.0f}" if figures.get("mean_batch") else ""
    return (
        f"{figures['received']}/{figures['sent']} lists, {figures['lists_per_s']:.0f}/s, "
        f"p50 {lat['p50_ms']:.0f} p95 {lat['p95_ms']:.0f} p99 {lat['p99_ms']:.0f} ms{kept}{batch}, "
        f"CPU {figures['cpu_us_per_event'] or 0:.0f} µs/event, load {figures['load']:.1f}"
    )
