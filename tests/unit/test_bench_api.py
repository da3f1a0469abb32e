"""Pure helpers of the query API benchmark: who each GET goes to, and the figures of its answers."""

import asyncio
from argparse import Namespace
from collections import Counter
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.api_benchmark import query_figures, query_targets, worker_side_shares
from bench.api_load import QuerySamples, Target, run_queries
from streamer.worker.sequencing import user_partition

A, B = "http://127.0.0.1:1001", "http://127.0.0.1:1002"


def workers() -> list:
    return [SimpleNamespace(env={"STREAMREC_WEB_PORT": url.rsplit(":", 1)[1]}) for url in (A, B)]


def test_every_third_get_goes_to_the_worker_not_holding_the_user_the_others_to_the_owner():
    users = [f"user-{n}" for n in range(50)]
    owners = {0: A, 1: B, 2: A, 3: B}
    args = Namespace(request_rate=30, seconds=10, non_owner_every=3)
    targets = query_targets(users, owners, workers(), 4, args)
    assert len(targets) == 300
    assert Counter(t.group for t in targets) == {"owner": 200, "forwarded": 100}
    for n, target in enumerate(targets):
        user = target.url.split("/users/")[1].split("/")[0]
        owner = owners[user_partition(user, 4)]
        assert target.url.startswith(owner) == (target.group == "owner") == (n % 3 != 2)


def test_figures_split_owner_and_forwarded_answers_and_count_what_was_not_answered():
    samples = QuerySamples(
        due_s=[0.0, 0.01, 0.02, 0.03],
        latency_ms=[2.0, 4.0, 10.0, 50.0],
        status=[200, 200, 200, 503],
        group=["owner", "owner", "forwarded", "forwarded"],
        last_done_s=2.0,
    )
    figures = query_figures(samples)
    assert (figures["all"]["requests"], figures["all"]["not_200"], figures["all"]["max_ms"]) == (4, 1, 10.0)
    assert figures["all"]["answered_per_s"] == 1.5  # 3 answers from the first due time to the last answer
    assert (figures["owner"]["p50_ms"], figures["forwarded"]["count"]) == (3.0, 1)


def test_worker_side_shares_are_cumulative_bucket_counts_over_all_answers():
    shares = worker_side_shares(Counter({"0.005": 3, "0.02": 9, "+Inf": 10}))
    assert shares == {"0.005": 0.3, "0.02": 0.9}


def test_queries_are_sent_on_schedule_and_timed_from_when_they_were_due():
    async def run() -> QuerySamples:
        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(0.05)
            return web.Response(text="ok", status=200 if request.path == "/fine" else 503)

        app = web.Application()
        app.router.add_get("/{name}", slow)
        async with TestServer(app) as server:
            targets = [Target(str(server.make_url(f"/{name}")), name) for name in ("fine", "busy") * 5]
            return await run_queries(targets, rate=100)

    samples = asyncio.run(run())
    assert (
        sorted(zip(samples.group, samples.status, strict=True)) == [("busy", 503)] * 5 + [("fine", 200)] * 5
    )
    assert all(latency >= 50 for latency in samples.latency_ms)  # the server's 50 ms are in every one
    # Sent at 100/s, not one after the other's answer: ten 50 ms answers take well under 10 x 50 ms.
    assert samples.last_done_s - min(samples.due_s) < 0.4
